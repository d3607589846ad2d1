from gotop.cli import main

raise SystemExit(main())
