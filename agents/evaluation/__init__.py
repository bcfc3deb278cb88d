"""Evaluation protocol v2: learned controllers against baselines, in two tracks.

The protocol, AlgoPerf-style (``python evaluate_agent.py``):

1. **Held-out envs.** By default the test families of :mod:`lr_gym.splits`: they
   differ from every training family in data and architecture. Nothing is selected on
   them; choices are made on the dev families (``--split dev``).
2. **Two tracks.** Self-tuning: no per-task tuning for any method; each runs at the
   task's ``lr0`` or its package's default. External tuning: every tunable baseline gets
   the same number of quasi-random trials (default 5) within its own documented search
   space (:mod:`agents.evaluation.tuning`), on a tuning seed, validation metric only. The learned
   controller is untuned in both.
3. **Paired runs.** Every controller runs every env on every evaluation seed; a seed
   gives every controller the same initialisation and data order. Several learned
   agents (``--agent RUN1 RUN2 ...``, e.g. PPO seeds) are pooled into one row. Agents
   are loaded only from their pickle-free ``controller.safetensors``
   (:mod:`agents.controller`): evaluating a run folder from someone else runs no code.
4. **Targets from runs that are not scored.** Per env, the median over
   target-setting seeds of the best validation metric of the (tuned) reference,
   ``warmup_cosine``.
5. **Scores** (:mod:`~agents.evaluation.scoring`): final test metric as rliable's IQM
   with a stratified-bootstrap CI; AlgoPerf's performance-profile score on steps to
   target; rliable's probability of improvement of the learned controller over each
   baseline, with its CI; convergence time (epochs to 95% of the final metric) and
   wall seconds to target without one-time costs.

Modules: :mod:`~agents.evaluation.rollout` (one controller, one episode),
:mod:`~agents.evaluation.tuning` (the external-tuning track's trials),
:mod:`~agents.evaluation.metrics` and :mod:`~agents.evaluation.stats` (time to target,
rliable and AlgoPerf statistics), :mod:`~agents.evaluation.results` (results files with
their provenance), :mod:`~agents.evaluation.store` (resumable ``runs.jsonl``),
:mod:`~agents.evaluation.runner` (jobs and worker processes),
:mod:`~agents.evaluation.scoring`, :mod:`~agents.evaluation.report`,
:mod:`~agents.evaluation.plots` and :mod:`~agents.evaluation.cli` (the command line).
"""
