"""The one error type the entry point reports as a single line: a problem with something the user
gave (an input file, weights, a setting). Its message names the file or setting and the problem.
Anything else that goes wrong is a bug and keeps its traceback."""


class InputError(Exception):
    """A user-facing problem; str(error) is one line naming the file or setting."""
