"""Instructors' scenario library.  A scenario is a lesson file (the format of
pattern_lab/lessons/schema.py) kept in the database with its versions:
editing makes a new version, and whatever started from a version (a class,
a learner's progress) keeps it."""

import secrets

from django.conf import settings
from django.db import models


def new_scenario_id() -> str:
    return secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")


class Scenario(models.Model):
    PRIVATE, UNLISTED, PUBLIC = "private", "unlisted", "public"
    VISIBILITY = [(PRIVATE, "private: only you"), (UNLISTED, "unlisted: anyone with the link"),
                  (PUBLIC, "public: listed for every instructor")]

    id = models.CharField(primary_key=True, max_length=12, default=new_scenario_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scenarios")
    title = models.CharField(max_length=120)
    lab = models.CharField(max_length=40)
    visibility = models.CharField(max_length=8, choices=VISIBILITY, default=PRIVATE)
    copied_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]

    def __str__(self):
        return self.title

    def latest(self) -> "ScenarioVersion":
        return self.versions.order_by("-number").first()

    def visible_to(self, user) -> bool:
        return self.visibility != self.PRIVATE or (user.is_authenticated and user.id == self.owner_id)


class ScenarioVersion(models.Model):
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scenario", "number"], name="one_number_per_version")]
        ordering = ["number"]

    @property
    def key(self) -> str:
        """How lessons name this version (see lessons.services.item_for_key)."""
        return f"scenario/{self.scenario_id}/{self.number}"
