"""Looking inside a trained model: how surprised it is by each token of a text, what it expected
instead, what its hidden units do, and which of them track a feature of the text."""
