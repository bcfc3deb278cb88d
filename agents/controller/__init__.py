"""Training-side controller code, and the deployable runtime re-exported for compatibility.

The runtime (:class:`LRController`, its file, policy and faces) lives in
:mod:`lr_gym.control`, importable with the core install; import it from there. Here:

* :mod:`~agents.controller.resolve`: :class:`PolicyController`, a controller file acting
  in the env (evaluation), result-file labels and pinned copies;
* :mod:`~agents.controller.export`: a PPO run to a controller file, and its CLI. The one
  module that reads pickles (your own runs only); it is not imported here.
"""

from agents.controller.resolve import PolicyController, agent_labels, pin_controller
from lr_gym.control import *  # noqa: F403 - the runtime, re-exported
from lr_gym.control import __all__ as _runtime

__all__ = [*_runtime, "PolicyController", "agent_labels", "pin_controller"]
