from cw_tui.cli import main

raise SystemExit(main())
