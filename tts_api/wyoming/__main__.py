"""`python -m tts_api.wyoming`: the Wyoming service (see service.py)."""

from .service import main

raise SystemExit(main())
