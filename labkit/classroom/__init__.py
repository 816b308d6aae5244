"""A classroom: learners' check results go live to the instructor's page.

``labkit classroom serve`` (instructor) runs :mod:`labkit.classroom.server`;
``labkit classroom join URL TOKEN --name NAME`` (learner) makes every check and hint
also go to that server through :mod:`labkit.classroom.client`. The server needs
starlette and uvicorn; the learner's side needs only the standard library.
"""

from labkit.classroom.client import flush, install, join, leave, status, submit
from labkit.core.errors import ClassroomError

__all__ = ["ClassroomError", "flush", "install", "join", "leave", "status", "submit"]
