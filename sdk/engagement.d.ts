// Types of the nginx-engagement player SDK (engagement.js, engagement.mjs).

export interface AttachOptions {
    /** The video's id (1-128 bytes of [A-Za-z0-9._:-]). Required. */
    contentId: string;
    /** Base path of the module's locations. Default "/engagement". */
    endpoint?: string;
    /** Seconds really played before the view is sent; set it to the
     *  location's engagement_view_after. Default 0 (on start). */
    viewAfter?: number;
    /** Seconds really played before the engaged view is sent; set it to
     *  engagement_engaged_after. Default 30. */
    engagedAfter?: number;
    /** Seconds between heartbeats while playing, until the first answer
     *  gives the server's intervalMs. Default 10. */
    heartbeat?: number;
    /** Live counts: the SSE stream {endpoint}/live/{contentId}, polling
     *  the summary when it is not there. false: neither. Default true. */
    live?: boolean;
    /** Seconds between summary polls (without the stream). Default 5. */
    poll?: number;
    /** Retries of an event on network errors, 503 and 429. Default 8. */
    retries?: number;
    /** The session: default one per tab and content, kept in
     *  sessionStorage so a reload is the same watch. */
    sessionId?: string;
    /** A logged-in or device viewer; the module's dedupe key "viewer". */
    viewerId?: string;
    /** Who reacts; default viewerId, else the session. */
    userId?: string;
    /** A signed view token, or a function giving the current one; sent
     *  with every event (engagement_require_token). */
    token?: string | (() => string | undefined);
    /** A location that answers {"token": "...", "sessionId"?: "..."}; it
     *  is fetched once (with ?sessionId= the SDK's session appended)
     *  before the first event is sent. */
    bootstrap?: string;
    /** Sends "optOut": true with every event (also when the browser's
     *  navigator.globalPrivacyControl is true). */
    optOut?: boolean;
    /** Where [data-engagement-count] and [data-engagement-reaction]
     *  elements are looked for. Default document; null: none. */
    root?: ParentNode | null;
}

export interface Counts {
    views?: number;
    engagedViews?: number;
    replays?: number;
    uniqueViewers?: number;
    live?: number;
    peak?: number;
    likes?: number;
    reactions: Record<string, number>;
}

export interface ResponseEvent {
    path: string;
    method: "POST" | "DELETE";
    /** 0 when retries ran out or the network failed for good. */
    status: number;
    body: any;
    requestId: string;
}

export interface EventMap {
    /** Live or polled counts, and every reaction answer. */
    counts: Counts;
    /** Every final answer to an event (after retries). */
    response: ResponseEvent;
    /** An optimistic reaction change, before the server answers. */
    reaction: { reaction: string | null; previous: string | null };
    /** A restart after the end was sent as a replay. */
    replay: {};
}

export interface Player {
    readonly sessionId: string;
    /** The last counts (updated in place). */
    readonly counts: Counts;
    /** The user's reaction, as last known (optimistic until answered). */
    readonly reaction: string | null;
    /** Seconds really played on this page. */
    readonly played: number;
    /** Events waiting for an answer or a retry. */
    readonly pending: number;
    on<K extends keyof EventMap>(type: K, listener: (e: EventMap[K]) => void): Player;
    /** Reacts ("like" by default; null takes it back); resolves to the
     *  reaction the server confirmed. Same reaction again: no request. */
    react(type?: string | null): Promise<string | null>;
    unreact(): Promise<string | null>;
    /** Sends an interaction event (POST {endpoint}/event, type "click")
     *  named as the module's engagement_interaction declares, at the
     *  video's position; a click on an element with
     *  data-engagement-interaction="name" sends one too. Resolves to the
     *  answer's status and body (0 and null after the retries). */
    interact(name: string): Promise<{ status: number; body: unknown }>;
    /** Reads the user's reaction and the counts from {endpoint}/state. */
    state(): Promise<string | null>;
    /** Sends pending events now as beacons. */
    flush(): void;
    /** Removes every listener and timer, closes the stream. */
    detach(): void;
}

/** Attaches to a <video>, or to an hls.js (its .media) or dash.js
 *  (its getVideoElement()) player. */
export function attach(video: HTMLMediaElement | { media: HTMLMediaElement }
                              | { getVideoElement(): HTMLMediaElement },
                       options: AttachOptions): Player;

export const version: string;

declare const Engagement: { attach: typeof attach; version: string };
export default Engagement;

declare global {
    interface Window { Engagement: typeof Engagement; }
}
