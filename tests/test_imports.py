"""Guard: the metadata layer stays pure, importing neither the database nor the web framework."""

import subprocess
import sys


def test_metadata_imports_neither_sqlalchemy_nor_flask():
    code = (
        "import sys, objectplatform.metadata\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'flask')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_runtime_never_imports_flask():
    code = (
        "import sys, objectplatform.runtime, objectplatform.runtime.records, objectplatform.runtime.storage.migrate\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
