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


def new_code() -> str:
    # No 0/O, 1/I/L: a code read from a projector must not be misread.
    alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(6))


class Classroom(models.Model):
    """A live class: the instructor's run that students follow, polls, and
    the students' own forks when the instructor hands the run out."""

    FOLLOW, HANDOUT = "follow", "handout"

    code = models.CharField(max_length=6, unique=True, default=new_code)
    instructor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="classes")
    lab = models.CharField(max_length=40)
    version = models.ForeignKey(ScenarioVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey("runs.Run", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=8, default=FOLLOW)
    # The run on everyone's screen while following (the instructor's, or a student's shown to the class).
    shown = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step = models.IntegerField(default=-1)  # the scenario step presented last (-1: none yet)
    # The instructor's time travel on the shown run: the moment (ms) on everyone's screen, or None (live).
    view_t = models.FloatField(null=True, blank=True)
    open = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"class {self.code}"


class Student(models.Model):
    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="students")
    name = models.CharField(max_length=30)
    uid = models.CharField(max_length=64)  # the browser (session) the student joined from
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    joined = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["classroom", "name"], name="one_name_per_class"),
                       models.UniqueConstraint(fields=["classroom", "uid"], name="one_browser_per_class")]
        ordering = ["name"]


class Poll(models.Model):
    OPEN, CLOSED, REVEALED = "open", "closed", "revealed"

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="polls")
    question = models.CharField(max_length=300)
    choices = models.JSONField()  # [{"label": ..., "value": ...}]
    answer = models.CharField(max_length=500, blank=True, default="")  # JMESPath, graded from the run
    state = models.CharField(max_length=8, default=OPEN)
    result = models.JSONField(null=True, blank=True)  # {"answer": value, "correct": index or null, "t": ms}
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Vote(models.Model):
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="votes")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="votes")
    choice = models.PositiveSmallIntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["poll", "student"], name="one_vote_per_student")]
