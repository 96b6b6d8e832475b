"""When a training has diverged: the rule ``fitting.fit`` stops on.

A training has diverged, and stops at once, when

* its loss is NaN or infinite, or
* its running loss, the mean batch loss of the last ``WINDOW`` steps (the first step's
  loss standing in for the steps before it), exceeds ``FACTOR`` times its starting loss:
  the loss of the first step (the starting weights, before any update), counted as at
  least ln(classes), the loss of a uniform guess.

Why the first step and not the first epoch: a learning rate far too high explodes within
the first epoch (lr 1000 on real photos: a first-epoch mean of 38,448 against a start
near 1), so a first-epoch reference would already be exploded and would catch the run
late or never. Why the floor: a start that already fits (fine-tune from a probed head,
loss near 0) would otherwise make ten times its loss, still below chance, count as
divergence. Why a window: one hard batch is not a divergence; five in a row that are
together ten times worse than guessing are; and as the window starts full of the first
step's loss, one batch alone must be over 46 times the start to stop training, but
a loss that keeps climbing stops within a step or two of passing ten times the start.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# The running loss may grow to this many times the starting loss.
FACTOR = 10.0
# The running loss is the mean over this many most recent steps.
WINDOW = 5


def _loss(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


@dataclass
class DivergenceWatch:
    """Watches each step's training loss for the divergence rule.

    Attributes:
        start: The starting loss (floored at ln(classes)); ``None`` before the first step.
        recent: The last ``WINDOW`` steps' losses (at first, the first step's repeated).
    """

    start: float | None = None
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def observe(self, loss: float, step: int, n_classes: int) -> str | None:
        """Records one step's loss.

        Args:
            loss: The step's mean batch loss.
            step: The step (1-based).
            n_classes: Classes the model tells apart (sets the floor of the start).

        Returns:
            Why training diverged at this step, or ``None`` while it has not.
        """
        if not math.isfinite(loss):
            return f"{'NaN' if math.isnan(loss) else 'infinite'} loss at step {step}"
        if self.start is None:
            self.start = max(loss, math.log(max(n_classes, 2)))
            self.recent.extend([loss] * WINDOW)
        self.recent.append(loss)
        running = sum(self.recent) / WINDOW
        if running <= FACTOR * self.start:
            return None
        return (
            f"mean training loss of the last {WINDOW} steps {_loss(running)} > "
            f"{FACTOR:g} × starting loss {_loss(self.start)} at step {step}"
        )
