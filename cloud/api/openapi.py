"""OpenAPI 3.1 document built from the app's own routes and pydantic models, so it always matches them.

Each view is annotated with `documented(...)`: its request body (a pydantic
model, "binary" or "multipart") and its answers, each a description or a
(description, model) pair. JSON schemas come from the models'
`model_json_schema`, the same models the views validate requests with and
build their answers from (cloud/api/schemas.py, cloud/api/responses.py).
"""

from __future__ import annotations

import re

from flask import Flask
from pydantic import BaseModel

from cloud.api.errors import ErrorBody
from cloud.api.schemas import JobConfig

def documented(summary: str, body=None, auth: str | None = None, responses: dict | None = None,
               produces: str = "application/json", headers: dict | None = None):
    """Annotates a view: body is a pydantic model, 'binary' or 'multipart'; each response a
    description or (description, model); headers: optional request headers, name -> description."""

    def wrap(view):
        view.openapi = {"summary": summary, "body": body, "auth": auth, "headers": headers or {},
                        "responses": responses or {"200": "OK"}, "produces": produces}
        return view

    return wrap


class _Components:
    """The document's shared schemas, filled from pydantic models as they are referenced."""

    def __init__(self) -> None:
        self.schemas: dict = {}

    def ref(self, model: type[BaseModel]) -> dict:
        if model.__name__ not in self.schemas:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            self.schemas.update(schema.pop("$defs", {}))
            self.schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_and_parameters(rule: str):
    parameters = []

    def replace(match):
        converter, name = match.group(1), match.group(2)
        schema = {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return re.sub(r"<(?:(\w+):)?(\w+)>", replace, rule), parameters


def _request_body(body, components: _Components):
    if body is None:
        return None
    if body == "binary":
        return {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    if body == "multipart":
        return {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": ["model", "manifest", "config"],
                       "properties": {"model": {"type": "string", "format": "binary"},
                                      "manifest": {"type": "string", "format": "binary"},
                                      "config": components.ref(JobConfig)},
                       "additionalProperties": {"type": "string", "format": "binary", "description":
                                                "an inference model the manifest lists, in the field named "
                                                "by its file (e.g. infer_int8.tflite)"}},
            "encoding": {"config": {"contentType": "application/json"},
                         "model": {"contentType": "application/octet-stream"},
                         "manifest": {"contentType": "application/json"}}}}}
    return {"required": True, "content": {"application/json": {"schema": components.ref(body)}}}


def _response(status: str, answer, produces: str, components: _Components) -> dict:
    description, model = answer if isinstance(answer, tuple) else (answer, None)
    if not status.startswith("2"):
        model = model or ErrorBody
    if status == "304":
        return {"description": description}
    if model is not None:
        return {"description": description, "content": {"application/json": {"schema": components.ref(model)}}}
    schema = {"application/octet-stream": {"type": "string", "format": "binary"},
              "application/json": {"type": "object"}}.get(produces, {"type": "string"})
    return {"description": description, "content": {produces: {"schema": schema}}}


def _operation(endpoint: str, method: str, spec: dict, parameters: list, components: _Components) -> dict:
    operation = {"summary": spec["summary"], "operationId": f"{endpoint}_{method.lower()}", "responses": {}}
    parameters = parameters + [{"name": name, "in": "header", "required": False, "description": description,
                                "schema": {"type": "string"}} for name, description in spec["headers"].items()]
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(spec["body"], components)
    if body:
        operation["requestBody"] = body
    if spec["auth"]:
        operation["security"] = [{spec["auth"]: []}]
    for status, answer in spec["responses"].items():
        operation["responses"][status] = _response(status, answer, spec["produces"], components)
    defaults = {"400": "bad request", "401": "unauthorized", "413": "body over the limit"}
    for status, description in defaults.items():
        if spec["auth"] or spec["body"]:
            operation["responses"].setdefault(status, _response(status, description, "", components))
    return operation


def build_document(app: Flask, title: str, version: str) -> dict:
    paths: dict = {}
    components = _Components()
    components.ref(ErrorBody)
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if spec is None:
            continue
        path, parameters = _path_and_parameters(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, method, spec, parameters,
                                                                     components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "FEDWEAR_ADMIN_TOKEN"},
                "device": {"type": "http", "scheme": "bearer", "description": "<device_id>.<device_secret>"},
                "dashboard": {"type": "http", "scheme": "basic",
                              "description": "user admin, password FEDWEAR_ADMIN_TOKEN"},
            },
        },
    }
