from gdpr_daemon.cli import main

raise SystemExit(main())
