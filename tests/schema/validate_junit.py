"""Validate JUnit XML files against tests/schema/junit.xsd (CI step; needs `xmlschema`)."""
import sys
from pathlib import Path

import xmlschema

schema = xmlschema.XMLSchema(str(Path(__file__).with_name("junit.xsd")))
bad = 0
for f in sys.argv[1:]:
    errors = list(schema.iter_errors(f))
    for e in errors[:5]:
        print(f"{f}: {e.reason} at {e.path}")
    bad += bool(errors)
    print(f"{f}: {'INVALID' if errors else 'valid'}")
sys.exit(1 if bad else 0)
