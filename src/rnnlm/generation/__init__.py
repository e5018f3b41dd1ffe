"""Writing text with a trained model: a session (``session``) drives streams (``stream``), each
drawing its tokens (``sampling``) after a prompt read once (``prompt``); the model steps one
token at a time, for one stream (``single_stream_step``) or a batch of them (``batched_step``)."""
