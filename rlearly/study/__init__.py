"""Studies: a YAML spec -> a plan of nodes (pretrain -> branches x seeds -> evaluations) -> cached runs -> tables.

spec.py (the YAML and its arms), nodes.py (the plan: nodes, their paths and protocols), runner.py (pool,
submitit, lock, ETA), tables.py (tidy CSVs).

Spec (studies/*.yaml; unknown keys are errors):

    name: tiny
    config: {preset: tiny, world.math_fraction: 0.3}      # base config: preset + dotted overrides
    branch:
      checkpoints: [0, -1]          # indices into the pretraining checkpoints, or "all"
      methods: [rl, sft, sft_rl]
      per_method: {sft_rl: [-1]}    # checkpoints of some methods, instead of `checkpoints`
      seeds: [0]
      overrides: {rl.steps: 60}     # recipe settings on top of the base config
      method_overrides: {sft_rl: {rl.steps: 90}}  # recipe settings of one method only
    eval: {splits: [test], n: 32, ks: [1, 8, 32], max_problems: 200, seed: 0, readiness: true}
    pretrain_seeds: [0]             # one pretraining run per seed, each branched as above (default: config seed)
    arms:                           # further experiments, each on top of the above
      rollout_g4:
        config: {}                  # pretraining/world overrides (a different one = its own pretraining run)
        branch: {checkpoints: [-1], methods: [rl], overrides: {rl.group_size: 4}}
        eval: {splits: [test, hard]}

The main plan is the arm "main". Arms that share a pretraining config share its run and base evaluations
(a node belongs to the first arm that plans it), and an arm with the same pretraining and recipe config as
an earlier one (adding seeds, pretraining seeds, checkpoints or splits to it) is labelled as that one in the
tables. Every row carries its `pretrain_seed` and `seed` (the branch's): a unit of trained weights.

Layout under the study root (default runs/<name>):

    pretrain/<config hash>/                        the pretraining run and its checkpoints
    branch/<method>/<checkpoint>/s<seed>-<hash>/   one branch per (method, checkpoint, seed); from a pretraining
                                                   run of another seed p: .../p<p>s<seed>-<hash>/
    samples/                                       the sample store (every evaluation sample, once)
    eval/<checkpoint>/<split>.json                 pass@k with CIs + general capability
                                                   (split "train" on base checkpoints: the readiness
                                                   diagnostic, base pass@k on the RL training prompts)
    timings.jsonl                                  wall time of every node run (stage breakdown)
    tables/*.csv                                   tidy tables the notebooks read (size and sha256 of
                                                   each in tables/meta.json, checked when they are read)

Every node directory is content-addressed by its config hash and finished nodes are skipped, so a second
run with nothing changed trains and samples nothing; an interrupted node resumes. `run(..., jobs=N)` runs
independent nodes in N worker processes; a lock file keeps a second runner off the same study.
"""
from rlearly.study.nodes import Node, eval_task, plan, status
from rlearly.study.runner import clock, log_timing, run
from rlearly.study.spec import MAIN, ROLES, Arm, BranchPlan, EvalPlan, StudySpec, arm_labels, load_study
from rlearly.study.tables import floor_table, write_tables

__all__ = ["MAIN", "ROLES", "Arm", "BranchPlan", "EvalPlan", "Node", "StudySpec", "arm_labels", "clock", "eval_task",
           "floor_table", "load_study", "log_timing", "plan", "run", "status", "write_tables"]
