//! Diesel table definitions, written to match `migrations/{sqlite,postgres}`.
//! Both backends share these definitions; timestamps are Unix epoch milliseconds.

diesel::table! {
    counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    tickets (id) {
        id -> BigInt,
        number -> Text,
        kind -> Text,
        short_description -> Nullable<Text>,
        description -> Nullable<Text>,
        category -> Nullable<Text>,
        subcategory -> Nullable<Text>,
        impact -> Nullable<BigInt>,
        urgency -> Nullable<BigInt>,
        priority -> Nullable<BigInt>,
        state -> Text,
        hold_reason -> Nullable<Text>,
        assignment_group -> Nullable<Text>,
        assigned_to -> Nullable<Text>,
        caller -> Nullable<Text>,
        configuration_item -> Nullable<Text>,
        resolution_code -> Nullable<Text>,
        resolution_notes -> Nullable<Text>,
        estimated_completion -> Nullable<Text>,
        sla_due -> Nullable<Text>,
        attributes -> Text,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        created_by -> Text,
        updated_by -> Text,
        field_stamps -> Text,
        open_conflicts -> BigInt,
        sys_id -> Text,
    }
}

diesel::table! {
    journal (id) {
        id -> BigInt,
        ticket_id -> BigInt,
        kind -> Text,
        author_partner -> Text,
        partner_entry_id -> Nullable<Text>,
        body -> Text,
        created_at -> BigInt,
        version -> Nullable<BigInt>,
    }
}

diesel::table! {
    xrefs (id) {
        id -> BigInt,
        partner -> Text,
        partner_ticket_id -> Nullable<Text>,
        ticket_id -> BigInt,
        active -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        seen_version -> BigInt,
    }
}

diesel::table! {
    transactions (id) {
        id -> BigInt,
        at -> BigInt,
        partner -> Nullable<Text>,
        request_id -> Text,
        method -> Text,
        path -> Text,
        payload_sha256 -> Text,
        result -> Text,
        status -> Integer,
        error_codes -> Text,
        ticket_id -> Nullable<BigInt>,
        ticket_number -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        partner -> Text,
        ticket_id -> BigInt,
        event -> Text,
        delivery_id -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        lease_owner -> Nullable<Text>,
        last_status -> Nullable<Integer>,
        last_response -> Nullable<Text>,
        delivered_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> BigInt,
        outbox_id -> BigInt,
        partner -> Text,
        attempt -> Integer,
        started_at -> BigInt,
        duration_ms -> BigInt,
        http_status -> Nullable<Integer>,
        outcome -> Text,
        error_class -> Nullable<Text>,
        response_excerpt -> Nullable<Text>,
        worker -> Text,
    }
}

diesel::table! {
    partner_controls (partner) {
        partner -> Text,
        paused -> Bool,
        updated_at -> BigInt,
        breaker_open_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    idempotency_keys (partner, key) {
        partner -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Integer,
        response_body -> Text,
        ticket_id -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    credentials (id) {
        id -> BigInt,
        client_id -> Text,
        secret_hash -> Text,
        partner -> Nullable<Text>,
        scope -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        previous_secret_hash -> Nullable<Text>,
        previous_valid_until -> Nullable<BigInt>,
        kind -> Text,
        contract_major -> Nullable<BigInt>,
    }
}

diesel::table! {
    auth_events (id) {
        id -> BigInt,
        at -> BigInt,
        client_id -> Nullable<Text>,
        source -> Text,
        outcome -> Text,
        reason -> Text,
    }
}

diesel::table! {
    partner_secrets (partner, name) {
        partner -> Text,
        name -> Text,
        sealed -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    inbound_webhooks (partner, webhook_id) {
        partner -> Text,
        webhook_id -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    access_tokens (token_hash) {
        token_hash -> Text,
        credential_id -> BigInt,
        partner -> Nullable<Text>,
        scope -> Text,
        expires_at -> BigInt,
        created_at -> BigInt,
        contract_major -> Nullable<BigInt>,
    }
}

diesel::table! {
    conflicts (id) {
        id -> BigInt,
        ticket_id -> BigInt,
        ticket_number -> Text,
        partner -> Text,
        request_id -> Text,
        status -> Text,
        seen_version -> BigInt,
        ticket_version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        resolved_by -> Nullable<Text>,
        resolved_at -> Nullable<BigInt>,
        resolution_comment -> Nullable<Text>,
    }
}

diesel::table! {
    conflict_fields (conflict_id, field) {
        conflict_id -> BigInt,
        field -> Text,
        base -> Text,
        proposed -> Text,
        current -> Text,
        current_by -> Text,
        current_at -> BigInt,
        current_version -> BigInt,
        disposition -> Text,
        chosen -> Nullable<Text>,
    }
}

diesel::table! {
    sync_jobs (job) {
        job -> Text,
        partner -> Text,
        watermark -> Nullable<BigInt>,
        lease_owner -> Nullable<Text>,
        lease_until -> BigInt,
        last_run_id -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> BigInt,
        kind -> Text,
        partner -> Text,
        started_by -> Text,
        dry_run -> Bool,
        scope -> Text,
        status -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        since -> Nullable<BigInt>,
        watermark -> Nullable<BigInt>,
        counts -> Text,
        message -> Nullable<Text>,
        owner -> Text,
    }
}

diesel::table! {
    sync_run_errors (id) {
        id -> BigInt,
        run_id -> BigInt,
        partner_ticket_id -> Nullable<Text>,
        record_sha256 -> Text,
        errors -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    reconcile_items (id) {
        id -> BigInt,
        run_id -> BigInt,
        partner -> Text,
        ticket_id -> Nullable<BigInt>,
        ticket_number -> Nullable<Text>,
        partner_ticket_id -> Nullable<Text>,
        kind -> Text,
        fields -> Text,
        cause -> Text,
        action -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    shadow_diffs (id) {
        id -> BigInt,
        partner -> Text,
        shadow_sha256 -> Text,
        at -> BigInt,
        request_id -> Text,
        kind -> Text,
        detail -> Text,
    }
}

diesel::table! {
    signals (name) {
        name -> Text,
        generation -> BigInt,
    }
}

diesel::table! {
    processes (id) {
        id -> Text,
        kind -> Text,
        delivers -> Bool,
        started_at -> BigInt,
        seen_at -> BigInt,
        revoked_heard -> BigInt,
        contracts_heard -> BigInt,
        contracts_sha256 -> Text,
    }
}

diesel::joinable!(journal -> tickets (ticket_id));
diesel::joinable!(conflicts -> tickets (ticket_id));
diesel::joinable!(conflict_fields -> conflicts (conflict_id));
diesel::joinable!(xrefs -> tickets (ticket_id));
diesel::joinable!(outbox -> tickets (ticket_id));
diesel::joinable!(access_tokens -> credentials (credential_id));
diesel::joinable!(refresh_tokens -> credentials (credential_id));
diesel::joinable!(delivery_attempts -> outbox (outbox_id));
diesel::joinable!(sync_run_errors -> sync_runs (run_id));
diesel::joinable!(reconcile_items -> sync_runs (run_id));

diesel::allow_tables_to_appear_in_same_query!(
    counters,
    tickets,
    journal,
    xrefs,
    transactions,
    outbox,
    idempotency_keys,
    credentials,
    access_tokens,
    refresh_tokens,
    delivery_attempts,
    partner_controls,
    auth_events,
    partner_secrets,
    inbound_webhooks,
    conflicts,
    conflict_fields,
    sync_jobs,
    sync_runs,
    sync_run_errors,
    reconcile_items,
);

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        credential_id -> BigInt,
        partner -> Text,
        scope -> Text,
        expires_at -> BigInt,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    console_sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        credential_id -> BigInt,
        read_only -> Bool,
        csrf_token -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        ended_at -> Nullable<BigInt>,
    }
}
