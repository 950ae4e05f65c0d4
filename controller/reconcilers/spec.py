"""Checks on a session's spec that the CRD schema cannot express.

The operator reads objects it did not write, so this is total: any input, however malformed, yields
a list of problems and never an exception. Messages name the field and say how to fix it; they never
repeat the offending value, which may be huge or hold a credential.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controller.names import ANNOTATION_PARENT_SESSION, MAX_SESSION_NAME, is_session_name

MAX_PROMPT_BYTES = 100 * 1024
MAX_DISPLAY_NAME = 256
MAX_MODEL = 256
MAX_ENV_VARS = 100
MAX_ENV_BYTES = 256 * 1024
MAX_MCP_BYTES = 256 * 1024
MAX_URL = 2048
MAX_REF = 255
MAX_PATH = 1024
# Seconds (timeout, inactivityTimeout) and token counts fit a signed 32-bit number, about 68 years:
# the Job's activeDeadlineSeconds is timeout plus a grace and must not overflow, and the runner and
# the work queue's timers read these as ordinary numbers.
MAX_SECONDS = 2**31 - 1
MAX_TOKENS = 2**31 - 1
# userId becomes an annotation of the runner's ServiceAccount and, like displayName, an env var.
MAX_USER_FIELD = 1024
MAX_GROUPS = 1000

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_SCHEMES = ("https", "http", "ssh", "git")
_SCP_LIKE = re.compile(r"[A-Za-z0-9._~+-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:[^\s:][^\s]*")
_REF_FORBIDDEN = set("~^:?*[\\")
_URL_RULE = "use an https://, http://, ssh:// or git:// URL with a host and a path, or user@host:path"


@dataclass(frozen=True)
class SpecProblem:
    field: str
    message: str

    def __str__(self) -> str:
        """Reads as a sentence in a condition message or Event: 'spec.timeout must be at least 0'."""
        return f"{self.field} {self.message}" if self.field else self.message


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key_path(parent: str, key: Any) -> str:
    """A readable path even for keys that are long or not identifiers."""
    text = key if isinstance(key, str) else repr(key)
    if len(text) > 64:
        text = text[:64] + "..."
    if _ENV_NAME.fullmatch(text):
        return f"{parent}.{text}"
    return f"{parent}[{json.dumps(text)}]"


def git_url_problem(url: str) -> str | None:
    """Why `url` is not a remote git clones safely, or None.

    Local paths, file:// and remote helpers (ext::) would let a session read the runner's own files
    or run commands; a leading '-' would be taken as an option by git.
    """
    if not url:
        return "must not be empty; " + _URL_RULE
    if len(url) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    if _has_control_or_space(url):
        return "must not contain spaces or control characters"
    if url.startswith("-"):
        return "must not start with '-'"
    lowered = url.lower()
    if lowered.startswith("file:"):
        return "local file URLs are not allowed; " + _URL_RULE
    if "::" in url.split("/", 1)[0]:
        return "git remote helpers (such as ext::) are not allowed; " + _URL_RULE
    if "://" in url:
        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError:
            return "is not a well-formed URL; " + _URL_RULE
        if parts.scheme.lower() not in _URL_SCHEMES:
            return "uses an unsupported scheme; " + _URL_RULE
        if not parts.hostname:
            return "has no host; " + _URL_RULE
        if parts.hostname.startswith("-") or (parts.username or "").startswith("-"):
            return "host and user must not start with '-'"
        if parts.path.strip("/") == "":
            return "has no repository path; " + _URL_RULE
        return None
    if _SCP_LIKE.fullmatch(url):
        return None
    return "is not a git URL; " + _URL_RULE


def git_ref_problem(ref: str) -> str | None:
    """Why `ref` is not a branch name git accepts, or None (git check-ref-format rules)."""
    if not ref:
        return "must not be empty"
    if len(ref) > MAX_REF:
        return f"is longer than {MAX_REF} characters"
    if _has_control_or_space(ref):
        return "must not contain spaces or control characters"
    bad = sorted(_REF_FORBIDDEN.intersection(ref))
    if bad:
        return "must not contain any of " + " ".join(bad)
    if ref.startswith(("-", "/")):
        return "must not start with '-' or '/'"
    if ref.endswith(("/", ".lock", ".")):
        return "must not end with '/', '.' or '.lock'"
    if ".." in ref or "//" in ref or "@{" in ref or ref == "@":
        return "must not contain '..', '//' or '@{', nor be '@'"
    if any(part.startswith(".") for part in ref.split("/")):
        return "no part between slashes may start with '.'"
    return None


class _Checker:
    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []

    def add(self, field: str, message: str) -> None:
        self.problems.append(SpecProblem(field, message))

    def string(
        self,
        parent: Mapping[str, Any],
        key: str,
        path: str,
        *,
        max_chars: int = 0,
        max_bytes: int = 0,
        non_empty: bool = False,
    ) -> str | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(path, "must be a string")
            return None
        if non_empty and not value.strip():
            self.add(path, "must not be empty")
        elif max_chars and len(value) > max_chars:
            self.add(path, f"must be at most {max_chars} characters")
        elif max_bytes and _utf8_size(value) > max_bytes:
            self.add(path, f"must be at most {max_bytes} bytes (UTF-8)")
        else:
            return value
        return None

    def boolean(self, parent: Mapping[str, Any], key: str, path: str) -> None:
        value = parent.get(key)
        if value is not None and not isinstance(value, bool):
            self.add(path, "must be true or false")

    def integer(
        self, parent: Mapping[str, Any], key: str, path: str, minimum: int, maximum: int = MAX_SECONDS
    ) -> None:
        value = parent.get(key)
        if value is None:
            return
        if not _is_int(value):
            self.add(path, "must be a whole number")
        elif value < minimum:
            self.add(path, f"must be at least {minimum}")
        elif value > maximum:
            self.add(path, f"must be at most {maximum}")

    def obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.add(path, "must be an object")
            return None
        return value

    def array(self, parent: Mapping[str, Any], key: str, path: str) -> Sequence[Any] | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            self.add(path, "must be a list")
            return None
        return value

    def string_list(self, parent: Mapping[str, Any], key: str, path: str) -> None:
        items = self.array(parent, key, path)
        for index, item in enumerate(items or []):
            if not isinstance(item, str):
                self.add(f"{path}[{index}]", "must be a string")

    def checked(self, value: str | None, path: str, rule: Callable[[str], str | None]) -> None:
        if value is not None:
            problem = rule(value)
            if problem:
                self.add(path, problem)


def _check_repos(c: _Checker, spec: Mapping[str, Any]) -> None:
    for index, repo in enumerate(c.array(spec, "repos", "spec.repos") or []):
        path = f"spec.repos[{index}]"
        if not isinstance(repo, Mapping):
            c.add(path, "must be an object with a url")
            continue
        if repo.get("url") is None:
            c.add(f"{path}.url", "is required")
        c.checked(c.string(repo, "url", f"{path}.url"), f"{path}.url", git_url_problem)
        c.checked(c.string(repo, "branch", f"{path}.branch"), f"{path}.branch", git_ref_problem)
        c.boolean(repo, "autoPush", f"{path}.autoPush")


def _workflow_path_problem(path: str) -> str | None:
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return "must not contain control characters"
    if path.startswith("/") or "\\" in path:
        return "must be a relative path using '/' separators"
    if ".." in path.split("/"):
        return "must not contain '..' segments"
    return None


def _check_workflow(c: _Checker, spec: Mapping[str, Any]) -> None:
    workflow = c.obj(spec, "activeWorkflow", "spec.activeWorkflow")
    if workflow is None:
        return
    c.checked(
        c.string(workflow, "gitUrl", "spec.activeWorkflow.gitUrl"),
        "spec.activeWorkflow.gitUrl",
        git_url_problem,
    )
    c.checked(
        c.string(workflow, "branch", "spec.activeWorkflow.branch"),
        "spec.activeWorkflow.branch",
        git_ref_problem,
    )
    c.checked(
        c.string(workflow, "path", "spec.activeWorkflow.path"),
        "spec.activeWorkflow.path",
        _workflow_path_problem,
    )


def _check_llm(c: _Checker, spec: Mapping[str, Any]) -> None:
    llm = c.obj(spec, "llmSettings", "spec.llmSettings")
    if llm is None:
        return
    c.string(llm, "model", "spec.llmSettings.model", max_chars=MAX_MODEL, non_empty=True)
    temperature = llm.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            c.add("spec.llmSettings.temperature", "must be a number between 0 and 2")
        elif not 0 <= temperature <= 2:  # also rejects NaN and infinities
            c.add("spec.llmSettings.temperature", "must be between 0 and 2")
    c.integer(llm, "maxTokens", "spec.llmSettings.maxTokens", minimum=1, maximum=MAX_TOKENS)


def _check_user(c: _Checker, spec: Mapping[str, Any]) -> None:
    user = c.obj(spec, "userContext", "spec.userContext")
    if user is None:
        return
    c.string(user, "userId", "spec.userContext.userId", max_chars=MAX_USER_FIELD)
    c.string(user, "displayName", "spec.userContext.displayName", max_chars=MAX_USER_FIELD)
    c.string_list(user, "groups", "spec.userContext.groups")
    groups = user.get("groups")
    if isinstance(groups, list | tuple) and len(groups) > MAX_GROUPS:
        c.add("spec.userContext.groups", f"must have at most {MAX_GROUPS} entries")


def _check_env(c: _Checker, spec: Mapping[str, Any]) -> None:
    env = c.obj(spec, "environmentVariables", "spec.environmentVariables")
    if env is None:
        return
    if len(env) > MAX_ENV_VARS:
        c.add("spec.environmentVariables", f"must have at most {MAX_ENV_VARS} entries")
    total = 0
    for key, value in env.items():
        path = _key_path("spec.environmentVariables", key)
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            c.add(path, "is not a valid variable name: use letters, digits and '_', not a leading digit")
        if not isinstance(value, str):
            c.add(path, "must be a string (quote numbers and booleans)")
        else:
            total += _utf8_size(value)
    if total > MAX_ENV_BYTES:
        c.add("spec.environmentVariables", f"values must total at most {MAX_ENV_BYTES} bytes")


def _check_mcp(c: _Checker, spec: Mapping[str, Any]) -> None:
    mcp = c.obj(spec, "mcpServers", "spec.mcpServers")
    if mcp is None:
        return
    custom = c.obj(mcp, "custom", "spec.mcpServers.custom")
    for key, server in (custom or {}).items():
        if not isinstance(server, Mapping):
            c.add(_key_path("spec.mcpServers.custom", key), "must be an object describing the server")
    c.string_list(mcp, "disabled", "spec.mcpServers.disabled")
    try:
        size = len(json.dumps(mcp, separators=(",", ":")).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        c.add("spec.mcpServers", "must be plain JSON data")
        return
    if size > MAX_MCP_BYTES:
        c.add("spec.mcpServers", f"must be at most {MAX_MCP_BYTES} bytes as JSON")


def _check_parent(c: _Checker, session: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """The parent of a continuation names a session: it is used to name a PVC and shown in messages."""
    meta = session.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    env = spec.get("environmentVariables")
    sources = (
        (
            annotations,
            ANNOTATION_PARENT_SESSION,
            f"metadata.annotations[{json.dumps(ANNOTATION_PARENT_SESSION)}]",
        ),
        (env, "PARENT_SESSION_ID", "spec.environmentVariables.PARENT_SESSION_ID"),
    )
    for source, key, path in sources:
        value = source.get(key) if isinstance(source, Mapping) else None
        if not isinstance(value, str) or not value.strip():
            continue
        if not is_session_name(value.strip()):
            c.add(
                path, f"must name a session (a DNS-1123 subdomain of at most {MAX_SESSION_NAME} characters)"
            )
        return


def validate_spec(session: Mapping[str, Any]) -> list[SpecProblem]:
    """Every problem found, in field order; an empty list means the operator can act on the spec."""
    if not isinstance(session, Mapping):
        return [SpecProblem("", "the session must be an object")]
    spec = session.get("spec")
    if not isinstance(spec, Mapping):
        return [SpecProblem("spec", "is required and must be an object")]
    c = _Checker()
    c.string(spec, "initialPrompt", "spec.initialPrompt", max_bytes=MAX_PROMPT_BYTES)
    c.string(spec, "displayName", "spec.displayName", max_chars=MAX_DISPLAY_NAME)
    c.boolean(spec, "interactive", "spec.interactive")
    c.boolean(spec, "stopOnRunFinished", "spec.stopOnRunFinished")
    c.integer(spec, "timeout", "spec.timeout", minimum=0)
    c.integer(spec, "inactivityTimeout", "spec.inactivityTimeout", minimum=0)
    _check_parent(c, session, spec)
    _check_repos(c, spec)
    _check_workflow(c, spec)
    _check_llm(c, spec)
    _check_user(c, spec)
    _check_env(c, spec)
    _check_mcp(c, spec)
    return c.problems
