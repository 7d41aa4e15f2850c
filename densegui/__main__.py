from densegui.cli import main

raise SystemExit(main())
