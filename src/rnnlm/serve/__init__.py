"""``rnnlm serve``: an OpenAI-compatible HTTP API over the generation session, continuous
batching (one worker thread per model) and a web playground (``static/``).

Thin layers, each a module; a request's route through them:

    guard        the middleware: the connection limit, API key, body limits, the one rule for
                 a body's text (``jsonbody``: JSON in UTF-8, Unicode strings), HEAD, the counter
    routes       a route awaits its handler and makes the HTTP answer of what it gives
    requests     the request model (pydantic) turns itself into a job (``to_job``), within the
                 server's limits, its generation settings checked by the library
    completions  the handler: the job submitted, its end awaited, or streamed (``streaming``)
    events       the job's events on the event loop; the client going away cancels the job
    batcher      the model's worker: admits the job, reads its prompts, steps its streams with
                 the session, sends the events back (``jobs``: the job and its outcomes)
    errors       what went wrong below the routes (a refused setting, no room, a fault) as
                 OpenAI's error object, its status and headers: one mapping
    scoring      /v1/score's handler, on the model's scoring thread

    route -> request model -> job -> batcher -> session step -> events back -> response

Around them: ``service`` (the models and their workers, started and stopped with the app),
``app`` (the FastAPI app put together), ``server`` (``serve``: load, bind, run uvicorn, stop),
``options`` (the server's settings), ``models`` (the runs served), ``responses`` (the JSON of
the answers), ``metrics`` (Prometheus).
"""
