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


def test_exponential_decays_geometrically_to_its_final_factor() -> None:
    f = schedule_factors("exponential", 100, final_lr_frac=0.1)
    assert f[0] == 1.0 and f[100] == pytest.approx(0.1)
    assert f[50] == pytest.approx(0.1 ** 0.5)
    np.testing.assert_allclose(f[1:] / f[:-1], 0.1 ** 0.01)  # one constant ratio per step
    with pytest.raises(ValueError, match="final_lr_frac"):
        schedule_factor("exponential", 3, 10)
    with pytest.raises(ValueError, match="final_lr_frac"):
        EnvConfig(schedule="exponential")


def test_wsd_is_constant_then_a_one_minus_sqrt_cooldown() -> None:
    f = schedule_factors("wsd", 100)
    assert np.all(f[:80] == 1.0) and f[80] == pytest.approx(1.0)  # stable for 80% of T
    assert f[100] == 0.0
    # (1 - sqrt) of the cooldown's progress: a quarter of the way down is half the LR.
    assert f[85] == pytest.approx(1 - np.sqrt(0.25))
    g = schedule_factors("wsd", 100, warmup_frac=0.1, final_lr_frac=0.2)
    assert g[0] == pytest.approx(0.1) and g[100] == pytest.approx(0.2)


@pytest.mark.parametrize("name", ["cosine", "linear", "exponential", "wsd"])
def test_decays_fall_monotonically_to_their_final_factor(name: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(total=st.integers(1, 400), final=st.floats(0.001, 1.0))
    def check(total: int, final: float) -> None:
        f = schedule_factors(name, total, final_lr_frac=final)
        assert np.all(np.diff(f) <= 1e-12)
        assert f[0] == 1.0
        assert f[total] == pytest.approx(final)

    check()
