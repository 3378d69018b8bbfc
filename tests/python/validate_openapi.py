"""Validates an OpenAPI document against the OpenAPI 3.1 schema.

Usage: validate_openapi.py SPEC.json

Prints `valid <version>` and exits 0, or prints the validation error and exits 1.
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    try:
        OpenAPIV31SpecValidator(spec).validate()
    except OpenAPIValidationError as error:
        print(f"invalid: {error}")
        sys.exit(1)
    print(f"valid {spec.get('openapi')}")


if __name__ == "__main__":
    main()
