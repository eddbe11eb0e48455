"""The provider-facing side of the app: what is sent to Runware (or the sandbox) and what
comes back: the HTTP client and its retry policy (``client``), submissions (``submit``),
the webhook (``webhooks``), replies and ``getResponse`` (``replies``), reconciliation
(``reconcile``) and the per-task tokens of the callback URLs (``tokens``)."""
