"""Search attributes that make goals and tasks findable in the Temporal UI."""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

GOAL_STATUS = SearchAttributeKey.for_keyword("GoalStatus")
GOAL_PROGRESS = SearchAttributeKey.for_float("GoalProgress")
GOAL_WORKSPACE = SearchAttributeKey.for_keyword("GoalWorkspace")
TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
ASSIGNED_AGENT = SearchAttributeKey.for_keyword("AssignedAgent")

ALL = {
    GOAL_STATUS.name: "Keyword",
    GOAL_PROGRESS.name: "Double",
    GOAL_WORKSPACE.name: "Keyword",
    TASK_STATUS.name: "Keyword",
    ASSIGNED_AGENT.name: "Keyword",
}
"""Name to type, as `temporal operator search-attribute create` and the dev server spell them."""

_INDEXED_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
}


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every attribute at launch."""
    return [flag for name, kind in ALL.items() for flag in ("--search-attribute", f"{name}={kind}")]


async def ensure_registered(client: Client, namespace: str) -> list[str]:
    """Register the attributes the namespace lacks; return the names that were added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: _INDEXED_TYPES[kind]
        for name, kind in ALL.items()
        if name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
