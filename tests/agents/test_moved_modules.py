"""The flat module paths of earlier releases still import, warn, and are the new modules."""

import importlib
import subprocess
import sys

import pytest

from agents import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module_with_a_deprecation_warning(old):
    new = MOVED[old]
    sys.modules.pop(old, None)  # another test may have imported it already
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new}; import it from there"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the alias leaves the module its own spec
    assert sys.modules[old] is module


def test_old_from_imports_work_and_warn_once_per_process():
    code = (
        "import warnings\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from agents.stats import mean_ci\n"
        "    from agents.ppo import make_ppo, load_hyperparams\n"
        "    from agents.rollout import run_episode\n"
        "    import agents.stats\n"
        "    from agents.stats import mean_ci as again\n"
        "import agents.evaluation.stats as new\n"
        "assert again is mean_ci is new.mean_ci\n"
        "msgs = [str(x.message) for x in w if x.category is DeprecationWarning\n"
        "        and 'moved to' in str(x.message)]\n"
        "assert len(msgs) == 3, msgs\n"
        "assert all(x.filename == '<string>' for x in w if 'moved to' in str(x.message)), \\\n"
        "    [x.filename for x in w]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_baselines_and_deploy_keep_their_names_without_a_warning(recwarn):
    from agents.baselines import BASELINES, make_baseline
    from agents.deploy import LRController, export_controller  # noqa: F401

    assert "cosine" in BASELINES and make_baseline("cosine") is not None
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)
                and "moved to" in str(w.message)]
