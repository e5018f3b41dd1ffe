"""Looking inside a trained model and its text: per-token surprisal, hidden units, copied text."""
