from rnnlm.models.recurrent import RecurrentLM, State, detach_state, state_batch_size

__all__ = ["RecurrentLM", "State", "detach_state", "state_batch_size"]
