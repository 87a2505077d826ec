"""What evaluating a tenant's templates may spend, the bounds on their nesting, and the
errors evaluation raises."""

from __future__ import annotations

DEFAULT_OUTPUT_BUDGET = 64 * 1024 * 1024  # characters produced in one feature run
DEFAULT_STEP_BUDGET = 1_000_000  # expressions evaluated, loop items, variables scanned
MAX_DEPTH = 32  # variables whose values refer to variables
MAX_NESTING = 64  # blocks, expressions and indexers inside each other
MAX_PARENTHESES = 32  # in a #{calc}
MAX_JSON_DEPTH = 64  # the server's JSON reader refuses deeper documents


class TemplateError(Exception):
    """The template cannot be evaluated: a cycle, a nesting or budget limit, a filter that
    fails on its input."""


class ParseError(TemplateError):
    """The template does not parse (the server then leaves it as written). Its message is
    the server's, which quotes the ten characters of the template before where parsing
    stopped: the template's text, never a variable's value (a value that does not parse is
    used as written, without an error)."""


class CycleError(TemplateError):
    """A variable's value refers, through others, to the variable itself."""


class Budget:
    """What evaluating may spend, shared by every template of one feature run: characters
    (each string evaluation makes, and each value a filter, comparison or lookup reads, every
    time) and steps. Work per step is bounded by characters, so together they bound time."""

    def __init__(
        self, characters: int = DEFAULT_OUTPUT_BUDGET, steps: int = DEFAULT_STEP_BUDGET
    ) -> None:
        self.characters_limit, self.characters = characters, characters
        self.steps_limit, self.steps = steps, steps

    def produce(self, count: int) -> None:
        """Charge ``count`` characters made or read (a join before it is made)."""
        self.characters -= count
        if self.characters < 0:
            raise TemplateError(
                f"evaluation exceeds the output budget of {self.characters_limit} characters"
            )

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise TemplateError(f"evaluation exceeds the step budget of {self.steps_limit} steps")
