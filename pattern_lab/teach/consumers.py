"""The class socket: one per class page.  It receives the class frames for
its audience (students or the instructor) from the per-process frame hub,
exactly like a run's viewers receive a run's frames, and accepts nothing."""

from __future__ import annotations

from channels.db import database_sync_to_async

from pattern_lab.runs.consumers import RunConsumer, hub

from .classroom import STUDENTS, TEACHER, channel
from .models import Classroom


def audience(scope, code: str) -> str | None:
    """Which class channel this socket may hear, or None."""
    classroom = Classroom.objects.filter(code=code.upper()[:6]).first()
    if classroom is None:
        return None
    user = scope.get("user")
    if user is not None and user.is_authenticated and user.id == classroom.instructor_id:
        return channel(classroom, TEACHER)
    session = scope.get("session")
    sid = session.get(f"class:{classroom.code}") if session is not None else None
    if sid and classroom.students.filter(id=sid).exists():
        return channel(classroom, STUDENTS)
    return None


class ClassConsumer(RunConsumer):
    async def connect(self):
        code = self.scope["url_route"]["kwargs"]["code"]
        self.outlet = self.make_outlet()
        self.run = None
        name = await database_sync_to_async(audience)(self.scope, code)
        if name is None:
            await self.close(code=4403)
            return
        self.run_id = name  # the hub's key for this audience (not a run)
        self.joined = True
        await self.accept()
        await hub.join(self.run_id, self.outlet)
        await self.send_full()

    async def disconnect(self, code):
        if getattr(self, "joined", False):
            await hub.leave(self.run_id, self.outlet)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data and '"sync"' in text_data:
            await self.send_full()
        # Anything else is ignored: votes and controls are POSTs (CSRF, rate limits).
