"""A classroom: learners' check results go live to the instructor's page.

``labkit classroom serve`` (instructor) runs :mod:`labkit.classroom.server`;
``labkit classroom join URL TOKEN --name NAME`` (learner) makes every check and hint
also go to that server through :mod:`labkit.classroom.client`. The server needs
starlette and uvicorn; the learner's side needs only the standard library.
"""

from labkit.classroom.client import ClassroomError, flush, join, leave, status, submit

__all__ = ["ClassroomError", "flush", "join", "leave", "status", "submit"]
