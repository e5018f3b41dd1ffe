from rnnlm.cli.main import entry

entry()
