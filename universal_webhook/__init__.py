"""Universal Webhook: Every Clockify event and your own HMAC-signed webhooks into one live workspace mirror, with flows that call any API or URL."""
