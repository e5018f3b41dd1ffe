from rnnlm.cli import entry

entry()
