"""Looking inside a trained model and its text: per-token surprisal and the top alternatives,
hidden units and the features they track, copied text."""
