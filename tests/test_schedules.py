from __future__ import annotations

import numpy as np
import pytest

from lr_gym.config import EnvConfig
from lr_gym.schedules import SCHEDULES, schedule_factor, schedule_factors


def test_closed_form_warmup_cosine_equals_torchs() -> None:
    # The closed-form cosine with a warmup is the same shape torch's SequentialLR builds.
    closed = schedule_factors("cosine", 200, warmup_frac=0.02)
    torch_built = schedule_factors("warmup_cosine", 200, warmup_frac=0.02)
    np.testing.assert_allclose(closed[:200], torch_built[:200], rtol=1e-9, atol=1e-15)


def test_factor_tables() -> None:
    step = schedule_factors("step", 40)
    assert step.shape == (41,)
    expected = [1, 1, 0.1, 0.1, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(step[[0, 19, 20, 29, 30, 39, 40]], expected)
    one = schedule_factors("onecycle", 100)
    assert one[0] == pytest.approx(1 / 25) and one.max() == pytest.approx(1.0)
    assert int(np.argmax(one)) == 29  # peak at pct_start 0.3
    np.testing.assert_allclose(
        schedule_factors("linear", 10, final_lr_frac=0.1),
        [schedule_factor("linear", t, 10, final_lr_frac=0.1) for t in range(11)],
    )


def test_bad_schedule_settings_are_clear() -> None:
    with pytest.raises(ValueError, match="warmup_frac"):
        schedule_factors("onecycle", 100, warmup_frac=0.1)
    with pytest.raises(ValueError, match="schedule_factors"):
        schedule_factor("step", 0, 10)
    with pytest.raises(ValueError, match="onecycle") as err:
        EnvConfig(schedule="one-cycle")
    assert all(name in str(err.value) for name in SCHEDULES)
