// Types of the LiveUser client: the ES module (`import LiveUser from "liveuser-widget"`, or
// `/liveuser.mjs` from the service) and the global `window.LiveUser` of `/liveuser.js`.

/**
 * The connection's status. `idle`: a tab hidden for longer than `idleAfter` stopped counting
 * (with `countIdle: false`); it keeps its last count and connects again when shown. `refused`
 * says why in `reason` (such as `"unknown_site"`).
 */
export type Status = "connecting" | "live" | "reconnecting" | "idle" | "refused";

/** What the widget knows now. Counts are `null` until the first one arrives. */
export interface State {
  siteId: string | null;
  status: Status;
  reason: string | null;
  /** Readers on the site now; below the site's privacy floor, the floor itself. */
  count: number | null;
  /** Whether `count` is the floor, the real count being lower. */
  belowMin: boolean;
  /** The privacy floor while the count is below it, else null. */
  floor: number | null;
  /** Total visits (with `enableTotalCount`). */
  total: number | null;
  /** The page this reader is counted on (with `page`), as the service counts it. */
  page: string | null;
  /** Readers of that page; null beyond the site's busiest pages. */
  pageCount: number | null;
  pageBelowMin: boolean;
}

/** A string the widget shows; `{n}` is replaced by the number. */
export type Text = string;
/** A string by plural category (Intl.PluralRules), `other` required. */
export type PluralText = { other: Text } & Partial<Record<"zero" | "one" | "two" | "few" | "many", Text>>;

/** The page's own words for what the widget shows. */
export interface Texts {
  connecting?: Text;
  reconnecting?: Text;
  fewerThan?: Text;
  unknownSite?: Text;
  pageNotCounted?: Text;
  online?: Text | PluralText;
  announcerLabel?: Text;
}

/** The configuration `init` takes; every field is optional. */
export interface Config {
  siteId?: string;
  /** The service's `ws(s)://` origin (the module fills in the one it was loaded from). */
  serverUrl?: string;
  displayElementId?: string;
  totalCountElementId?: string;
  enableTotalCount?: boolean;
  reconnectDelay?: number;
  heartbeatInterval?: number;
  debug?: boolean;
  countTabs?: boolean;
  /** `"auto"` (the path), `"hash"` (the hash route) or a page name. */
  page?: string | null;
  pageElementId?: string;
  transport?: "auto" | "websocket" | "sse";
  /** Path patterns (`"/users/*"`) whose pages count as one. */
  pageGroups?: string[];
  lang?: string | null;
  texts?: Texts;
  /** Seconds between screen-reader announcements (0: none). */
  announce?: number;
  /** Show only in elements naming this site (data-liveuser="site"). */
  namedOnly?: boolean;
  /** `false`: a tab hidden for longer than `idleAfter` stops counting until shown (default `true`). */
  countIdle?: boolean;
  /** Seconds a tab may stay hidden before it stops counting (5 at the least; default 300). */
  idleAfter?: number;
}

export interface LiveUserApi {
  init(config: Config): void;
  destroy(): void;
  /** The configuration in use, or null before `init`. */
  config(): Required<Config> | null;
  /** The first site's state, or `siteId`'s (a site an element of the page names). */
  state(siteId?: string): State;
  /** Calls `listener` with the state at once and on every change; returns the unsubscribe. */
  subscribe(listener: (state: State) => void, siteId?: string): () => void;
  /** A count as the page's language writes it ("1.2K"). */
  formatNumber(n: number): string;
}

export declare function init(config: Config): void;
export declare function destroy(): void;
export declare function config(): Required<Config> | null;
export declare function state(siteId?: string): State;
export declare function subscribe(listener: (state: State) => void, siteId?: string): () => void;
export declare function formatNumber(n: number): string;
declare const LiveUser: LiveUserApi;
export default LiveUser;

export interface UpdateDetail {
  siteId: string;
  count: number | null;
  totalCount: number | null;
  belowMin?: true;
  pageCount?: number | null;
  pageBelowMin?: true;
}
export interface StatusDetail {
  status: Status;
  reason: string | null;
  siteId: string | null;
}
export interface ErrorDetail {
  error: string;
  message: string;
  siteId: string;
}

declare global {
  interface Window {
    LiveUser: LiveUserApi;
    LiveUserConfig?: Config;
  }
  interface DocumentEventMap {
    "liveuser:update": CustomEvent<UpdateDetail>;
    "liveuser:status": CustomEvent<StatusDetail>;
  }
  interface WindowEventMap {
    "liveuser:error": CustomEvent<ErrorDetail>;
  }
}
