"""python manage.py lessons check | play <file or lab/name> | list"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pattern_lab.lessons.player import play
from pattern_lab.lessons.schema import LIBRARY, LessonError, library, load_file


class Command(BaseCommand):
    help = "Validate the lesson library (check), play one lesson headlessly (play), or list the lessons."

    def add_arguments(self, parser):
        parser.add_argument("what", choices=["check", "play", "list"])
        parser.add_argument("lesson", nargs="*", help="play: lesson files or library keys (lab/name); "
                                                      "none plays every lesson in the library")

    def handle(self, *args, what, lesson, **opts):
        if what == "check":
            return self.check_library()
        if what == "list":
            for key, item in library().items():
                self.stdout.write(f"{key}: {item.lesson.title} ({len(item.lesson.steps)} steps, "
                                  f"{item.lesson.questions()} questions, ~{item.lesson.minutes} min)")
            return
        targets = lesson or list(library())
        failed = 0
        for target in targets:
            key, parsed = self.resolve(target)
            transcript = play(parsed, key)
            self.stdout.write(f"{key}: {parsed.title}")
            for line in transcript.lines():
                self.stdout.write(line)
            if not transcript.ok:
                failed += 1
        if failed:
            raise CommandError(f"{failed} of {len(targets)} lessons did not play through")
        self.stdout.write(self.style.SUCCESS(f"{len(targets)} lessons played through"))

    def check_library(self):
        errors = []
        count = 0
        for path in sorted(LIBRARY.glob("*/*.yaml")):
            count += 1
            try:
                load_file(path)
            except LessonError as err:
                errors.append(str(err))
        try:
            library.cache_clear()
            library()
        except LessonError as err:
            errors.append(str(err))
        for e in errors:
            self.stderr.write(e)
        if errors:
            raise CommandError(f"{len(errors)} lesson files are wrong")
        self.stdout.write(self.style.SUCCESS(f"{count} lessons are valid"))

    def resolve(self, target: str):
        if target in library():
            return target, library()[target].lesson
        path = Path(target)
        if not path.exists():
            raise CommandError(f"no lesson '{target}' (give a file or one of: {', '.join(library())})")
        try:
            return path.name, load_file(path.resolve())
        except LessonError as err:
            raise CommandError(str(err)) from None
