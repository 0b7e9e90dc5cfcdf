"""OpenAPI 3.1 document built from the app's own routes, so it always matches them.

Each view is annotated with `documented(...)`; the builder walks the URL map.
"""

from __future__ import annotations

import re

from flask import Flask
from pydantic import BaseModel

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


def documented(summary: str, body=None, auth: str | None = None, responses: dict | None = None,
               produces: str = "application/json"):
    """Annotates a view: body is a pydantic model, 'binary' or 'multipart'."""

    def wrap(view):
        view.openapi = {"summary": summary, "body": body, "auth": auth,
                        "responses": responses or {"200": "OK"}, "produces": produces}
        return view

    return wrap


def _path_and_parameters(rule: str):
    parameters = []

    def replace(match):
        converter, name = match.group(1), match.group(2)
        schema = {"type": "integer"} if converter == "int" else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return re.sub(r"<(?:(\w+):)?(\w+)>", replace, rule), parameters


def _request_body(body, schemas: dict):
    if body is None:
        return None
    if body == "binary":
        return {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    if body == "multipart":
        return {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["model", "manifest", "config"],
            "properties": {"model": {"type": "string", "format": "binary"},
                           "manifest": {"type": "string", "format": "binary"},
                           "config": {"type": "string", "description": "JobConfig as JSON"}}}}}}
    assert issubclass(body, BaseModel)
    schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[body.__name__] = schema
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}}}


def build_document(app: Flask, title: str, version: str) -> dict:
    paths: dict = {}
    schemas: dict = {"Error": ERROR}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        spec = getattr(view, "openapi", None)
        if spec is None:
            continue
        path, parameters = _path_and_parameters(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = {"summary": spec["summary"], "operationId": f"{rule.endpoint}_{method.lower()}",
                         "responses": {}}
            if parameters:
                operation["parameters"] = parameters
            body = _request_body(spec["body"], schemas)
            if body:
                operation["requestBody"] = body
            if spec["auth"]:
                operation["security"] = [{spec["auth"]: []}]
            for status, description in spec["responses"].items():
                content_type = spec["produces"] if status.startswith("2") else "application/json"
                schema = {"$ref": "#/components/schemas/Error"} if not status.startswith("2") else {}
                operation["responses"][status] = {"description": description,
                                                  "content": {content_type: {"schema": schema}}}
            for status, description in (("400", "bad request"), ("401", "unauthorized")):
                if spec["auth"] or spec["body"]:
                    operation["responses"].setdefault(status, {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "FEDWEAR_ADMIN_TOKEN"},
                "device": {"type": "http", "scheme": "bearer", "description": "<device_id>.<device_secret>"},
            },
        },
    }
