"""Block Kit limits as Slack enforces them (https://api.slack.com/reference/block-kit), for the
stand-in: a payload Slack would refuse with ``invalid_blocks`` is refused here too."""

from __future__ import annotations

from typing import Any

MESSAGE_BLOCKS_MAX = 50
MODAL_BLOCKS_MAX = 100
_TEXT_TYPES = ("plain_text", "mrkdwn")


def _text(obj: Any, where: str, limit: int, errors: list[str], *, plain: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in _TEXT_TYPES:
        errors.append(f"{where}: not a text object")
        return
    if plain and obj["type"] != "plain_text":
        errors.append(f"{where}: must be plain_text")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"{where}: empty text")
    elif len(text) > limit:
        errors.append(f"{where}: {len(text)} chars > {limit}")


def _confirm(obj: Any, where: str, errors: list[str]) -> None:
    if not isinstance(obj, dict):
        errors.append(f"{where}: not an object")
        return
    _text(obj.get("title"), f"{where}.title", 100, errors, plain=True)
    _text(obj.get("text"), f"{where}.text", 300, errors)
    _text(obj.get("confirm"), f"{where}.confirm", 30, errors, plain=True)
    _text(obj.get("deny"), f"{where}.deny", 30, errors, plain=True)


def _element(el: Any, where: str, errors: list[str], action_ids: set[str]) -> None:
    if not isinstance(el, dict):
        errors.append(f"{where}: not an object")
        return
    action_id = el.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or len(action_id) > 255:
            errors.append(f"{where}.action_id: bad or > 255 chars")
        elif action_id in action_ids:
            errors.append(f"{where}.action_id: duplicate {action_id!r}")
        else:
            action_ids.add(action_id)
    kind = el.get("type")
    if kind == "button":
        _text(el.get("text"), f"{where}.text", 75, errors, plain=True)
        value = el.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            errors.append(f"{where}.value: > 2000 chars")
        if el.get("style") not in (None, "primary", "danger"):
            errors.append(f"{where}.style: {el.get('style')!r}")
        if "confirm" in el:
            _confirm(el["confirm"], f"{where}.confirm", errors)
    elif kind == "radio_buttons":
        options = el.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 10:
            errors.append(f"{where}.options: 1..10 needed")
    elif kind == "plain_text_input":
        if int(el.get("max_length", 3000)) > 3000:
            errors.append(f"{where}.max_length: > 3000")
    elif kind not in ("mrkdwn", "plain_text", "image"):
        errors.append(f"{where}: unsupported element type {kind!r}")


def validate_blocks(blocks: Any, *, max_blocks: int = MESSAGE_BLOCKS_MAX) -> list[str]:
    """Every limit the blocks break (empty when Slack would accept them)."""
    errors: list[str] = []
    if not isinstance(blocks, list):
        return ["blocks: not a list"]
    if len(blocks) > max_blocks:
        errors.append(f"blocks: {len(blocks)} > {max_blocks}")
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"{where}: untyped")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255 or block_id in block_ids:
                errors.append(f"{where}.block_id: bad, duplicate or > 255 chars")
            block_ids.add(str(block_id))
        kind = block["type"]
        if kind == "header":
            _text(block.get("text"), f"{where}.text", 150, errors, plain=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{where}: neither text nor fields")
            if "text" in block:
                _text(block["text"], f"{where}.text", 3000, errors)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(f"{where}.fields: > 10")
            for j, f in enumerate(fields if isinstance(fields, list) else []):
                _text(f, f"{where}.fields[{j}]", 2000, errors)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"{where}.elements: 1..10 needed")
            for j, el in enumerate(elements if isinstance(elements, list) else []):
                _text(el, f"{where}.elements[{j}]", 3000, errors)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"{where}.elements: 1..25 needed")
            for j, el in enumerate(elements if isinstance(elements, list) else []):
                _element(el, f"{where}.elements[{j}]", errors, action_ids)
        elif kind == "input":
            _text(block.get("label"), f"{where}.label", 2000, errors, plain=True)
            _element(block.get("element"), f"{where}.element", errors, action_ids)
        elif kind not in ("divider", "image"):
            errors.append(f"{where}: unsupported block type {kind!r}")
    return errors


def validate_view(view: Any) -> list[str]:
    """A modal as ``views.open`` checks it."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["view: not a modal"]
    errors = validate_blocks(view.get("blocks"), max_blocks=MODAL_BLOCKS_MAX)
    _text(view.get("title"), "view.title", 24, errors, plain=True)
    for name in ("submit", "close"):
        if name in view:
            _text(view[name], f"view.{name}", 24, errors, plain=True)
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append("view.private_metadata: > 3000 chars")
    if len(str(view.get("callback_id", ""))) > 255:
        errors.append("view.callback_id: > 255 chars")
    return errors
