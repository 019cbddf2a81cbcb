"""A run is its lab, params, seed and command log; everything else is derived
by replaying them (see simulations.kernel.replay)."""

import secrets

from django.db import models


def new_run_id() -> str:
    return secrets.token_hex(6)


class Run(models.Model):
    LIVE, IDLE = "live", "idle"

    id = models.CharField(primary_key=True, max_length=16, default=new_run_id, editable=False)
    lab = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    seed = models.PositiveIntegerField()
    owner = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=8, default=IDLE)
    speed = models.FloatField(default=1.0)
    frozen = models.BooleanField(default=False)
    # Simulated time reached when the run was last stopped (resume replays to here).
    sim_t = models.FloatField(default=0.0)
    # Fencing token of the actor that owns the run; commands are claimed under it.
    fence = models.BigIntegerField(default=0)
    # What the run is for: "" (a lab page), "lesson" (a guided lesson's run).
    kind = models.CharField(max_length=12, blank=True, default="")
    # Conditions the worker evaluates on every frame (see runs/conditions.py):
    # {"step": 2, "exprs": {"expect": "...", "answer": "..."}, "locked": true}.
    # "locked" refuses the learner's commands until a prediction is made.
    watch = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "lab", "-created"])]

    def __str__(self):
        return f"{self.lab} run {self.id}"


class Command(models.Model):
    """One learner action: stored (t empty) before the actor applies it, then
    stamped with the simulated time at which it was applied."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="commands")
    action = models.CharField(max_length=40)
    args = models.JSONField(default=list)
    t = models.FloatField(null=True, blank=True)
    # Position in the applied log (replays follow it).
    n = models.PositiveIntegerField(null=True, blank=True)
    # For a scripted command (from a scenario): the simulated time it is due.
    due = models.FloatField(null=True, blank=True)
    # A scripted command's caption, shown on the page when it is applied.
    note = models.CharField(max_length=200, blank=True, default="")
    error = models.CharField(max_length=300, blank=True, default="")
    author = models.CharField(max_length=64, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "t"])]

    def as_tuple(self):
        return (self.t, self.action, list(self.args))
