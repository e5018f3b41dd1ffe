"""Kernels in C for the few places where a score of small torch calls costs more than their work
(the batch-1 generation step). Each is compiled at first use by the system's C compiler
(``build``); where none can be had, callers keep their torch path."""
