"""What training and evaluation share.

Run folders (:mod:`~agents.common.runs`), folder locks (:mod:`~.folder_lock`), Ray
clusters (:mod:`~.ray_cluster`), gym packages (:mod:`~.packages`), optional extras
(:mod:`~.extras`) and CLI help (:mod:`~.help_format`).
"""
