"""Device shadows (classic and named): `document` holds AWS's semantics as pure functions,
`store` the `shadows` table, `service` the operations the MQTT and HTTP layers call."""
