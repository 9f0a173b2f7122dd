"""What the simulated gateway serves: providers, deployments, model groups, keys, teams, workflows.

The catalog is user-editable (a scenario YAML may override it), so every part is a pydantic
model that rejects unknown fields: a typo in a scenario must fail loudly, not be ignored.
The names mirror a LiteLLM ``proxy_config.yaml``: a *model group* is a ``model_name``, a
*deployment* is one ``model_list`` entry with ``model_info.id`` and ``litellm_params.order``.
"""

from __future__ import annotations

import hashlib
import math

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LogNormal(_Model):
    """A lognormal given by its median and log-space sigma (easier to reason about than mu)."""

    median: float = Field(gt=0)
    sigma: float = Field(default=0.5, ge=0)

    @property
    def mu(self) -> float:
        return math.log(self.median)


class Provider(_Model):
    name: str
    api_base: str
    #: LiteLLM prefixes exception classes with the provider, e.g. ``Openai.RateLimitError``.
    exception_prefix: str


class Deployment(_Model):
    id: str = Field(description="model_info.id, e.g. openai-gpt-4o")
    provider: str
    model: str = Field(description="served model name, e.g. gpt-4o")
    order: int = Field(default=1, ge=0)
    weight: float = Field(default=1.0, gt=0, description="tie-break weight within one order")
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    input_price_per_m: float = Field(ge=0, description="USD per 1M input tokens")
    output_price_per_m: float = Field(ge=0, description="USD per 1M output tokens")
    ttft_ms: LogNormal
    per_token_ms: LogNormal = Field(description="latency per output token after the first")
    error_rate: float = Field(default=0.003, ge=0, le=1)

    @property
    def litellm_model(self) -> str:
        return f"{self.provider}/{self.model}"


class ModelGroup(_Model):
    name: str = Field(description="LiteLLM model_name, what clients ask for")
    deployments: list[str] = Field(min_length=1)


class Team(_Model):
    name: str


class ApiKey(_Model):
    alias: str
    token: str = Field(description="the secret; never written to records")
    team: str
    workflow: str
    weight: float = Field(default=1.0, gt=0, description="share of traffic")

    @property
    def hashed(self) -> str:
        # LiteLLM stores and labels keys by sha256 of the token.
        return hashlib.sha256(self.token.encode()).hexdigest()


class Workflow(_Model):
    name: str
    team: str
    #: model group -> relative share of this workflow's calls
    model_groups: dict[str, float] = Field(min_length=1)
    agent: bool = False
    tools: list[str] = Field(default_factory=list)
    calls_per_session: LogNormal = LogNormal(median=1, sigma=0)
    max_calls_per_session: int = Field(default=1, ge=1)
    #: seconds between consecutive calls of an agent session (tool execution + thinking)
    call_gap_s: LogNormal = LogNormal(median=4, sigma=0.6)
    input_tokens: LogNormal = LogNormal(median=800, sigma=0.8)
    output_tokens: LogNormal = LogNormal(median=220, sigma=0.9)
    #: agent sessions accumulate context: input tokens grow by this many per call
    context_growth: int = Field(default=0, ge=0)
    stream_ratio: float = Field(default=0.7, ge=0, le=1)

    @property
    def mean_calls(self) -> float:
        if not self.agent:
            return 1.0
        dist = self.calls_per_session
        return min(float(self.max_calls_per_session), dist.median * math.exp(dist.sigma**2 / 2))


class RouterSettings(_Model):
    """LiteLLM ``router_settings``: fallbacks between model groups and cooldown policy."""

    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    allowed_fails: int = Field(default=3, ge=0)
    cooldown_time: float = Field(default=30.0, ge=0)


class Catalog(_Model):
    providers: list[Provider]
    deployments: list[Deployment]
    model_groups: list[ModelGroup]
    teams: list[Team]
    keys: list[ApiKey]
    workflows: list[Workflow]
    router: RouterSettings = RouterSettings()

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        problems: list[str] = []
        providers = {p.name for p in self.providers}
        deployments = {d.id for d in self.deployments}
        groups = {g.name for g in self.model_groups}
        teams = {t.name for t in self.teams}
        workflows = {w.name for w in self.workflows}
        problems += [
            f"deployment {d.id}: unknown provider {d.provider}"
            for d in self.deployments
            if d.provider not in providers
        ]
        seen: dict[str, str] = {}
        for g in self.model_groups:
            for dep in g.deployments:
                if dep not in deployments:
                    problems.append(f"model group {g.name}: unknown deployment {dep}")
                elif dep in seen:
                    # metrics map a deployment back to one group, so sharing is ambiguous
                    problems.append(f"deployment {dep} is in groups {seen[dep]} and {g.name}")
                seen[dep] = g.name
        for src, dsts in self.router.fallbacks.items():
            problems += [
                f"fallback {src} -> {d}: unknown model group"
                for d in [src, *dsts]
                if d not in groups
            ]
        for w in self.workflows:
            if w.team not in teams:
                problems.append(f"workflow {w.name}: unknown team {w.team}")
            problems += [
                f"workflow {w.name}: unknown model group {m}"
                for m in w.model_groups
                if m not in groups
            ]
        for k in self.keys:
            if k.team not in teams:
                problems.append(f"key {k.alias}: unknown team {k.team}")
            if k.workflow not in workflows:
                problems.append(f"key {k.alias}: unknown workflow {k.workflow}")
        if len({k.alias for k in self.keys}) != len(self.keys):
            problems.append("key aliases must be unique")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def deployment(self, dep_id: str) -> Deployment:
        for d in self.deployments:
            if d.id == dep_id:
                return d
        raise KeyError(dep_id)

    def provider(self, name: str) -> Provider:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)

    def group_of(self) -> dict[str, str]:
        """Deployment id -> the model group it serves."""
        return {dep: g.name for g in self.model_groups for dep in g.deployments}

    def workflow(self, name: str) -> Workflow:
        for w in self.workflows:
            if w.name == name:
                return w
        raise KeyError(name)


def _dep(
    dep_id: str,
    provider: str,
    model: str,
    order: int,
    prices: tuple[float, float],
    ttft: float,
    per_token: float,
) -> Deployment:
    return Deployment(
        id=dep_id,
        provider=provider,
        model=model,
        order=order,
        input_price_per_m=prices[0],
        output_price_per_m=prices[1],
        ttft_ms=LogNormal(median=ttft, sigma=0.35),
        per_token_ms=LogNormal(median=per_token, sigma=0.25),
    )


def _key(alias: str, team: str, workflow: str, weight: float) -> ApiKey:
    # Deterministic fake secret so hashed_api_key labels are stable across runs.
    digest = hashlib.sha256(f"gatewarden-sim:{alias}".encode()).hexdigest()[:32]
    return ApiKey(
        alias=alias, token=f"sk-sim-{digest}", team=team, workflow=workflow, weight=weight
    )


def default_catalog() -> Catalog:
    """Three providers, four model groups, six teams, twenty keys, eight workflows."""
    tools_code = ["read_file", "run_tests", "search_code", "apply_patch"]
    tools_research = ["web_search", "fetch_url", "summarize"]
    tools_ops = ["lookup_ticket", "query_kb", "reset_password"]
    workflows = [
        Workflow(name="search-answer", team="search", model_groups={"gpt-4o": 1.0}),
        Workflow(
            name="search-rerank",
            team="search",
            model_groups={"gpt-4o-mini": 1.0},
            input_tokens=LogNormal(median=1500, sigma=0.5),
            output_tokens=LogNormal(median=40, sigma=0.6),
            stream_ratio=0.2,
        ),
        Workflow(
            name="support-chat", team="support", model_groups={"gpt-4o": 0.6, "claude-sonnet": 0.4}
        ),
        Workflow(
            name="support-triage",
            team="support",
            model_groups={"claude-haiku": 1.0},
            output_tokens=LogNormal(median=80, sigma=0.6),
            stream_ratio=0.3,
        ),
        Workflow(
            name="analytics-summarize",
            team="analytics",
            model_groups={"gpt-4o": 0.5, "claude-sonnet": 0.5},
            input_tokens=LogNormal(median=4000, sigma=0.9),
            output_tokens=LogNormal(median=400, sigma=0.8),
        ),
        Workflow(name="marketing-copy", team="growth", model_groups={"gpt-4o-mini": 1.0}),
        Workflow(
            name="code-agent",
            team="platform",
            agent=True,
            tools=tools_code,
            model_groups={"claude-sonnet": 0.7, "gpt-4o": 0.3},
            calls_per_session=LogNormal(median=8, sigma=0.7),
            max_calls_per_session=120,
            context_growth=350,
            output_tokens=LogNormal(median=300, sigma=0.8),
        ),
        Workflow(
            name="research-agent",
            team="research",
            agent=True,
            tools=tools_research,
            model_groups={"gpt-4o": 0.5, "gpt-4o-mini": 0.5},
            calls_per_session=LogNormal(median=5, sigma=0.6),
            max_calls_per_session=60,
            context_growth=500,
        ),
        Workflow(
            name="helpdesk-agent",
            team="it",
            agent=True,
            tools=tools_ops,
            model_groups={"claude-haiku": 0.6, "gpt-4o-mini": 0.4},
            calls_per_session=LogNormal(median=3, sigma=0.5),
            max_calls_per_session=20,
            context_growth=200,
        ),
    ]
    keys = [
        _key("search-prod", "search", "search-answer", 6),
        _key("search-staging", "search", "search-answer", 0.5),
        _key("search-rerank-prod", "search", "search-rerank", 5),
        _key("search-rerank-batch", "search", "search-rerank", 1.5),
        _key("support-web", "support", "support-chat", 4),
        _key("support-mobile", "support", "support-chat", 2),
        _key("support-email", "support", "support-chat", 1),
        _key("support-triage-prod", "support", "support-triage", 3),
        _key("analytics-nightly", "analytics", "analytics-summarize", 1),
        _key("analytics-dash", "analytics", "analytics-summarize", 1.5),
        _key("analytics-adhoc", "analytics", "analytics-summarize", 0.5),
        _key("growth-campaigns", "growth", "marketing-copy", 2),
        _key("growth-experiments", "growth", "marketing-copy", 0.7),
        _key("code-agent-ci", "platform", "code-agent", 2.5),
        _key("code-agent-ide", "platform", "code-agent", 3),
        _key("platform-dev", "platform", "code-agent", 0.4),
        _key("research-prod", "research", "research-agent", 2),
        _key("research-batch", "research", "research-agent", 1),
        _key("helpdesk-prod", "it", "helpdesk-agent", 1.5),
        _key("it-sandbox", "it", "helpdesk-agent", 0.3),
    ]
    return Catalog(
        providers=[
            Provider(
                name="openai", api_base="https://api.openai.com/v1", exception_prefix="Openai"
            ),
            Provider(
                name="azure",
                api_base="https://gw-sim-eastus.openai.azure.com",
                exception_prefix="Azure",
            ),
            Provider(
                name="anthropic", api_base="https://api.anthropic.com", exception_prefix="Anthropic"
            ),
        ],
        deployments=[
            _dep("openai-gpt-4o", "openai", "gpt-4o", 1, (2.5, 10.0), 450, 12),
            _dep("azure-gpt-4o", "azure", "gpt-4o", 2, (2.5, 10.0), 520, 13),
            _dep("openai-gpt-4o-mini", "openai", "gpt-4o-mini", 1, (0.15, 0.6), 300, 7),
            _dep("azure-gpt-4o-mini", "azure", "gpt-4o-mini", 2, (0.15, 0.6), 340, 8),
            _dep(
                "anthropic-claude-sonnet", "anthropic", "claude-sonnet-4-5", 1, (3.0, 15.0), 700, 14
            ),
            _dep("anthropic-claude-haiku", "anthropic", "claude-haiku-4-5", 1, (1.0, 5.0), 380, 6),
        ],
        model_groups=[
            ModelGroup(name="gpt-4o", deployments=["openai-gpt-4o", "azure-gpt-4o"]),
            ModelGroup(name="gpt-4o-mini", deployments=["openai-gpt-4o-mini", "azure-gpt-4o-mini"]),
            ModelGroup(name="claude-sonnet", deployments=["anthropic-claude-sonnet"]),
            ModelGroup(name="claude-haiku", deployments=["anthropic-claude-haiku"]),
        ],
        teams=[
            Team(name=n)
            for n in ("search", "support", "analytics", "growth", "platform", "research", "it")
        ],
        router=RouterSettings(
            fallbacks={
                "gpt-4o": ["claude-sonnet"],
                "gpt-4o-mini": ["claude-haiku"],
                "claude-sonnet": ["gpt-4o"],
            },
        ),
        keys=keys,
        workflows=workflows,
    )
