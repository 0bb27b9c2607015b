"""A Dockerfile parser and the lint rules this project holds its images to.

Codes follow hadolint's where one exists (DL3007 and so on, https://github.com/hadolint/hadolint#rules)
and Docker's build checks otherwise (https://docs.docker.com/reference/build-checks/); CF rules
are this project's own. tests/ops/test_dockerfile.py runs them on the Dockerfile and on small
bad examples, and real hadolint too when it is installed.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EXEC_FORM = ("CMD", "ENTRYPOINT")
BUILDKIT_FLAGS = {"--chmod", "--link", "--mount", "--exclude", "--parents", "--network", "--security"}
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|[a-z0-9.+-]+-dev)\b")
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ENCRYPTION_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str  # as written
    flags: dict[str, str]
    args: str  # after the flags

    @property
    def name(self) -> str:
        return self.keyword.upper()

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/RUN (and HEALTHCHECK's command), else None."""
        text = self.args
        if self.name == "HEALTHCHECK":
            text = re.sub(r"^CMD\s+", "", text)
        if not text.lstrip().startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else None


@dataclass
class Stage:
    index: int
    base: str
    name: str | None
    from_line: Instruction
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.name == keyword]


@dataclass
class Dockerfile:
    directives: dict[str, str]
    stages: list[Stage]
    pre_from: list[Instruction]  # ARGs before the first FROM

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def parent(self, stage: Stage) -> Stage | None:
        for candidate in self.stages[: stage.index]:
            if candidate.name is not None and candidate.name == stage.base:
                return candidate
        return None

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, base first."""
        out = [stage]
        while (parent := self.parent(out[0])) is not None:
            out.insert(0, parent)
        return out

    def effective(self, stage: Stage, keyword: str) -> Instruction | None:
        """The last ``keyword`` in the stage's chain: what the built image has."""
        found = None
        for item in self.chain(stage):
            for instruction in item.all(keyword):
                found = instruction
        return found

    def env(self, stage: Stage) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in self.chain(stage):
            for instruction in item.all("ENV"):
                values.update(parse_env(instruction.args))
        return values

    def leaves(self) -> list[Stage]:
        """The images one would ship: stages that no stage is built FROM or copies from."""
        used = {stage.base for stage in self.stages}
        used |= {item.flags["--from"] for stage in self.stages for item in stage.all("COPY") if "--from" in item.flags}
        return [stage for stage in self.stages if stage.name not in used and str(stage.index) not in used]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if buffer and (not stripped or stripped.startswith("#")):
            continue  # comments and blank lines inside a continuation are dropped, as Docker does
        if not buffer:
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        if raw.rstrip().endswith("\\"):
            buffer.append(raw.rstrip()[:-1])
            continue
        buffer.append(raw)
        yield start, " ".join(part.strip() for part in buffer)
        buffer = []
    if buffer:
        yield start, " ".join(part.strip() for part in buffer)


def _split_flags(args: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        token, _, remainder = rest.partition(" ")
        name, _, value = token.partition("=")
        flags[name] = value
        rest = remainder.lstrip()
    return flags, rest


def parse_env(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:  # legacy `ENV NAME value`
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def parse(text: str) -> Dockerfile:
    directives: dict[str, str] = {}
    for raw in text.splitlines():
        match = re.match(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", raw)
        if not match:
            break
        directives[match.group(1).lower()] = match.group(2)
    stages: list[Stage] = []
    pre_from: list[Instruction] = []
    for number, line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        flags, rest = _split_flags(args.strip())
        instruction = Instruction(number, keyword, flags, rest)
        if instruction.name == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), words[0], name, instruction))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            pre_from.append(instruction)
    return Dockerfile(directives, stages, pre_from)


@dataclass(frozen=True)
class Finding:
    code: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.code} {self.message}"


Rule = Callable[[Dockerfile], Iterator[Finding]]
RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


def lint(text: str) -> list[Finding]:
    dockerfile = parse(text)
    return sorted((finding for check in RULES for finding in check(dockerfile)), key=lambda f: (f.line, f.code))


def _stage_names(dockerfile: Dockerfile) -> set[str]:
    return {stage.name for stage in dockerfile.stages if stage.name}


def _runs(dockerfile: Dockerfile) -> Iterator[tuple[Stage, Instruction]]:
    for stage in dockerfile.stages:
        for instruction in stage.all("RUN"):
            yield stage, instruction


@rule
def pinned_base_images(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3006/DL3007: every external base image names a tag (or digest), never `latest`."""
    names = _stage_names(dockerfile)
    for stage in dockerfile.stages:
        image = stage.base
        if image in names or image == "scratch":
            continue
        repository, _, digest = image.partition("@")
        tag = repository.rsplit("/", 1)[-1].partition(":")[2]
        if tag == "latest":
            yield Finding("DL3007", stage.from_line.line, f"{image}: never build FROM latest")
        elif not tag and not digest:
            yield Finding("DL3006", stage.from_line.line, f"{image}: name a tag")


@rule
def stage_names(dockerfile: Dockerfile) -> Iterator[Finding]:
    """Docker's StageNameCasing, DuplicateStageName and FromAsCasing."""
    seen: set[str] = set()
    for stage in dockerfile.stages:
        words = stage.from_line.args.split()
        if len(words) >= 2 and words[1] != "AS":
            yield Finding("FromAsCasing", stage.from_line.line, "write FROM … AS …")
        if stage.name is None:
            continue
        if stage.name != stage.name.lower():
            yield Finding("StageNameCasing", stage.from_line.line, f"stage {stage.name} must be lower case")
        if stage.name in seen:
            yield Finding("DuplicateStageName", stage.from_line.line, f"stage {stage.name} is defined twice")
        seen.add(stage.name)


@rule
def instruction_casing(dockerfile: Dockerfile) -> Iterator[Finding]:
    """Docker's ConsistentInstructionCasing: instructions in upper case."""
    for stage in dockerfile.stages:
        for instruction in [stage.from_line, *stage.instructions]:
            if instruction.keyword != instruction.name:
                yield Finding("ConsistentInstructionCasing", instruction.line, f"write {instruction.name}")


@rule
def multi_stage(dockerfile: Dockerfile) -> Iterator[Finding]:
    """CF001: a build stage and runtime stages that are not built FROM it (so tools,
    caches and sources of the build never reach a shipped image)."""
    if len(dockerfile.stages) < 2:
        yield Finding("CF001", 1, "use a multi-stage build: build in one stage, ship another")
        return
    builders = {stage.name for stage in dockerfile.stages if stage.name and _builds_wheels(stage)}
    for leaf in dockerfile.leaves():
        tainted = [stage.name for stage in dockerfile.chain(leaf) if stage.name in builders]
        if tainted:
            yield Finding("CF001", leaf.from_line.line, f"image {leaf.name} is built FROM build stage {tainted[0]}")


def _builds_wheels(stage: Stage) -> bool:
    return any(re.search(r"\bpip\s+wheel\b|\bpython\s+-m\s+build\b", item.args) for item in stage.all("RUN"))


@rule
def non_root_user(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3002: every shipped image ends on a non-root USER."""
    for leaf in dockerfile.leaves():
        user = dockerfile.effective(leaf, "USER")
        if user is None:
            yield Finding("DL3002", leaf.from_line.line, f"image {leaf.name} runs as root: set USER")
        elif user.args.split(":")[0] in ("root", "0"):
            yield Finding("DL3002", user.line, f"image {leaf.name}: last USER is root")


@rule
def healthcheck(dockerfile: Dockerfile) -> Iterator[Finding]:
    """CF002: every shipped image has an exec-form HEALTHCHECK that needs no curl or wget."""
    for leaf in dockerfile.leaves():
        check = dockerfile.effective(leaf, "HEALTHCHECK")
        if check is None or check.args.strip().upper() == "NONE":
            yield Finding("CF002", leaf.from_line.line, f"image {leaf.name} has no HEALTHCHECK")
            continue
        command = check.exec_form
        if command is None:
            yield Finding("CF002", check.line, "HEALTHCHECK CMD must be a JSON array (no shell needed)")
        elif command[0] in ("curl", "wget"):
            yield Finding("CF002", check.line, f"{command[0]} is not in slim images")


@rule
def copy_not_add(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3020: COPY, not ADD."""
    for stage in dockerfile.stages:
        for instruction in stage.all("ADD"):
            yield Finding("DL3020", instruction.line, "use COPY instead of ADD")


@rule
def exec_form(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3025 (Docker's JSONArgsRecommended): CMD and ENTRYPOINT in JSON form, so signals reach the process."""
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.name in EXEC_FORM and instruction.exec_form is None:
                yield Finding("DL3025", instruction.line, f"{instruction.name} must be a JSON array")


@rule
def workdir_absolute(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3000: WORKDIR is absolute."""
    for stage in dockerfile.stages:
        for instruction in stage.all("WORKDIR"):
            if not instruction.args.startswith(("/", "$")):
                yield Finding("DL3000", instruction.line, "use an absolute WORKDIR")


@rule
def no_maintainer(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL4000: MAINTAINER is deprecated."""
    for stage in dockerfile.stages:
        for instruction in stage.all("MAINTAINER"):
            yield Finding("DL4000", instruction.line, "MAINTAINER is deprecated; use a LABEL")


@rule
def pip_rules(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3042: pip install --no-cache-dir. DL3013: install pinned or from a file (a requirements
    file, a wheel, a path). CF003: never the dev extra."""
    for _, instruction in _runs(dockerfile):
        for command in re.split(r"&&|;|\|\|", instruction.args):
            words = command.split()
            if "pip" not in " ".join(words) or "install" not in words:
                continue
            if "--no-cache-dir" not in words:
                yield Finding("DL3042", instruction.line, "pip install needs --no-cache-dir")
            if any("[dev]" in word for word in words):
                yield Finding("CF003", instruction.line, "the dev extra does not belong in an image")
            after = words[words.index("install") + 1 :]
            packages, skip = [], False
            for word in after:
                if skip:
                    skip = False
                    continue
                if word in ("-r", "--requirement", "-c", "--constraint", "--find-links", "-f", "--index-url", "-i"):
                    skip = True
                    continue
                if not word.startswith("-"):
                    packages.append(word)
            for package in packages:
                if not re.search(r"==|\.whl$|^[./]|\*", package):
                    yield Finding("DL3013", instruction.line, f"pin {package} (==) or install from a file")


@rule
def apt_rules(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3027 apt-get not apt; DL3014 -y; DL3015 --no-install-recommends; DL3009 remove the
    lists in the same RUN; DL3004 no sudo; DL3003 WORKDIR not cd."""
    for _, instruction in _runs(dockerfile):
        text = instruction.args
        if re.search(r"(^|[;&|]\s*)apt\s", text):
            yield Finding("DL3027", instruction.line, "use apt-get, not apt")
        if re.search(r"(^|[;&|]\s*)sudo\s", text):
            yield Finding("DL3004", instruction.line, "no sudo in a build")
        if re.search(r"(^|[;&|]\s*)cd\s", text):
            yield Finding("DL3003", instruction.line, "use WORKDIR instead of cd")
        if re.search(r"apt-get\s+(-\S+\s+)*install\b", text):
            if not re.search(r"\s(-y|--yes|-qq?y|--assume-yes)\b", text):
                yield Finding("DL3014", instruction.line, "apt-get install needs -y")
            if "--no-install-recommends" not in text:
                yield Finding("DL3015", instruction.line, "apt-get install needs --no-install-recommends")
        apt = "apt-get update" in text or re.search(r"apt-get\s+(-\S+\s+)*install\b", text)
        if apt and "rm -rf /var/lib/apt/lists" not in text:
            yield Finding("DL3009", instruction.line, "remove /var/lib/apt/lists/* in the same RUN")


@rule
def pipefail(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL4006: a RUN with a pipe needs SHELL [..., "-o", "pipefail", ...] first."""
    for stage in dockerfile.stages:
        inherited = [item for parent in dockerfile.chain(stage)[:-1] for item in parent.all("SHELL")]
        strict = bool(inherited) and "pipefail" in inherited[-1].args
        for instruction in stage.instructions:
            if instruction.name == "SHELL":
                strict = "pipefail" in instruction.args
            if instruction.name == "RUN" and re.search(r"(?<!\|)\|(?!\|)", instruction.args) and not strict:
                yield Finding("DL4006", instruction.line, "set SHELL with -o pipefail before piping")


@rule
def no_compilers_in_images(dockerfile: Dockerfile) -> Iterator[Finding]:
    """CF004: shipped images install no compilers or -dev headers (build them into wheels instead)."""
    for leaf in dockerfile.leaves():
        for stage in dockerfile.chain(leaf):
            for instruction in stage.all("RUN"):
                if "install" in instruction.args and (match := COMPILERS.search(instruction.args)):
                    yield Finding("CF004", instruction.line, f"{match.group()} in image {leaf.name}")


@rule
def no_secrets_in_build_args(dockerfile: Dockerfile) -> Iterator[Finding]:
    """Docker's SecretsUsedInArgOrEnv: ARG and ENV end up in the image's history."""
    for stage in dockerfile.stages:
        for instruction in [*stage.all("ENV"), *stage.all("ARG")]:
            names = parse_env(instruction.args) if instruction.name == "ENV" else {instruction.args.split("=")[0]: ""}
            for name in names:
                if SECRET_NAME.search(name):
                    yield Finding("SecretsUsedInArgOrEnv", instruction.line, f"{name} must not be baked into the image")


@rule
def buildkit_syntax(dockerfile: Dockerfile) -> Iterator[Finding]:
    """CF005: BuildKit-only flags (COPY --chmod, RUN --mount, ...) need a `# syntax=` directive."""
    if "syntax" in dockerfile.directives:
        return
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            used = BUILDKIT_FLAGS & set(instruction.flags)
            if used:
                yield Finding("CF005", instruction.line, f"{sorted(used)[0]} needs # syntax=docker/dockerfile:1")


@rule
def copy_destination(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3021: COPY with several sources copies into a folder ending in /."""
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY"):
            words = instruction.args.split()
            if len(words) > 2 and not words[-1].endswith("/"):
                yield Finding("DL3021", instruction.line, "several sources need a destination ending in /")


@rule
def copy_from_known_stage(dockerfile: Dockerfile) -> Iterator[Finding]:
    """DL3022/DL3023: COPY --from names an earlier stage, never the stage itself."""
    for stage in dockerfile.stages:
        earlier = {item.name for item in dockerfile.stages[: stage.index] if item.name}
        for instruction in stage.all("COPY"):
            source = instruction.flags.get("--from")
            if source is None or ":" in source or "/" in source:
                continue
            if source == stage.name:
                yield Finding("DL3023", instruction.line, "COPY --from cannot name its own stage")
            elif source not in earlier and not source.isdigit():
                yield Finding("DL3022", instruction.line, f"COPY --from={source} names no earlier stage")
