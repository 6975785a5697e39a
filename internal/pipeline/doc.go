// Package pipeline implements the one place where Portcullis acts on an
// inbound message. Every inbound path (an SMTP listener of the gateway, the
// milter inside Postfix) hands the same Transaction to Process, which runs,
// in this order:
//
//  1. the analysis (package analysis: SPF RFC 7208, DKIM RFC 6376/8301/8463,
//     ARC RFC 8617, iprev RFC 8601 §3, then DMARC RFC 9989);
//  2. the decision (policy.Decide, the policy of the listener);
//  3. the action, one of four: reject (the policy's 5xx, e.g. 550 5.7.x of
//     RFC 7372, with a generic text and the evidence id); defer (the
//     policy's 4xx, e.g. 451 4.7.x: the sender keeps the message);
//     quarantine (the message is stored durably with store.PutQuarantine,
//     fsynced, and only then 250; a storage failure is 451); deliver (the
//     Authentication-Results fields that claim our authserv-id, that do not
//     parse, or that come from untrusted services when so configured are
//     removed and ours is prepended, RFC 8601 §5, and the message is handed
//     to the adapter's Deliverer; 250 only once the downstream accepted it,
//     see Deliverer for how its answers map to replies);
//  4. exactly one evidence record, naming the configuration version.
//
// There is no queue: a message is either accepted by the downstream (or the
// quarantine) before the 250, or the sender gets a 4xx or 5xx and keeps it.
// Any internal error or panic becomes 451 4.3.0 with a generic text and the
// evidence id (RFC 3463 X.3.0), never a 250; the error itself is logged and
// recorded, never sent to the peer.
//
// Evidence durability (DESIGN "Storage"): the records of delivered,
// rejected and deferred messages are queued for the store's next group
// commit (store.EnqueueEvidence): a delivered message is durable downstream,
// so its evidence may trail by one batch. The record of a quarantined message
// is committed (store.PutEvidence, still group-committed with concurrent
// writers) before the 250, after the quarantined body and item.
//
// The milter adapter uses the same pipeline: for it, delivering means
// telling the MTA which header fields to remove and which to add
// (Outcome.Changes), through a Deliverer that accepts at once.
package pipeline
