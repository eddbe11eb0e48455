"""The HTML views: the gallery, the task page and its actions, the submit form, the cost
dashboard, the delivery log, the login, and what every page shares (``pages``)."""
