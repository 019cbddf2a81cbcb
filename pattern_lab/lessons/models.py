"""A learner's progress through one lesson (per browser: the anonymous uid
kept in the session cookie), stored so that it survives a reload and a
server restart."""

from django.db import models

from pattern_lab.runs.models import Run


class Progress(models.Model):
    owner = models.CharField(max_length=64)
    key = models.CharField(max_length=100)  # the lesson: "<lab>/<name>"
    run = models.ForeignKey(Run, null=True, on_delete=models.SET_NULL, related_name="+")
    step = models.PositiveIntegerField(default=0)
    # {"chosen": {"<step>": <choice index>}, "graded": {"<step>": {...}}, "marks": {"<step>": <t>}}
    state = models.JSONField(default=dict)
    finished = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="one_progress_per_lesson")]

    def chosen(self, step: int) -> int | None:
        return self.state.get("chosen", {}).get(str(step))

    def graded(self, step: int) -> dict | None:
        return self.state.get("graded", {}).get(str(step))

    def mark(self, step: int) -> float:
        return float(self.state.get("marks", {}).get(str(step), 0.0))
