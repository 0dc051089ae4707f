from llmid.cli import main

raise SystemExit(main())
