"""The one exception type a user can cause; the command line turns it into exit status 2."""


class RnnlmError(Exception):
    """A mistake in the user's input (a path, a file, an option, a run folder).

    Its message is one line, meant to be read by the user as it is.
    """
