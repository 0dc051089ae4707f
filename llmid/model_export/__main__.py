"""`python -m llmid.model_export train structurer ...` (the same command as `llmid train structurer`)."""

from llmid.model_export.cli import main

raise SystemExit(main())
