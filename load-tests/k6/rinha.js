// Paystream's reference load test (docs/protocol.md §5) as a k6 script.
//
// The same scenario as `paystream-load rinha`, for comparing against the public contest's
// tooling: virtual users ramp linearly from 1 to MAX_REQUESTS over six stages; each posts a
// payment of 19.90 with a fresh UUID and sleeps 1 s; the processors' conditions change at
// every stage; a checker compares the backend's summary with the processors' every stage;
// the score is computed at the end.
//
// Built-in modules only (no remote imports: the machines cannot fetch them).
//
//   k6 run load-tests/k6/rinha.js
//   k6 run -e BACKEND_URL=http://127.0.0.1:9999 -e MAX_REQUESTS=550 -e STAGE_SECS=10 \
//          -e RESULT_FILE=load-tests/results/rinha-k6.json load-tests/k6/rinha.js
//
// Environment: BACKEND_URL, DEFAULT_URL, FALLBACK_URL, MAX_REQUESTS (550), STAGE_SECS (10;
// the run lasts six stages), ADMIN_TOKEN (backend purge, optional), PROCESSOR_TOKEN (123),
// TIMEOUT_MS (1500), RESULT_FILE (rinha-k6.json).

import http from "k6/http";
import { sleep } from "k6";
import exec from "k6/execution";
import { Counter } from "k6/metrics";

const BACKEND_URL = __ENV.BACKEND_URL || "http://127.0.0.1:9999";
const DEFAULT_URL = __ENV.DEFAULT_URL || "http://127.0.0.1:8001";
const FALLBACK_URL = __ENV.FALLBACK_URL || "http://127.0.0.1:8002";
const MAX_REQUESTS = parseInt(__ENV.MAX_REQUESTS || "550", 10);
const STAGE_SECS = parseFloat(__ENV.STAGE_SECS || "10");
const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || "";
const PROCESSOR_TOKEN = __ENV.PROCESSOR_TOKEN || "123";
const TIMEOUT_MS = parseInt(__ENV.TIMEOUT_MS || "1500", 10);
const RESULT_FILE = __ENV.RESULT_FILE || "rinha-k6.json";

// Six stages of processor conditions: [delay ms, failing].
const STAGES = [
  { default: [0, false], fallback: [0, false] },
  { default: [100, false], fallback: [0, false] },
  { default: [100, true], fallback: [0, false] },
  { default: [2000, true], fallback: [1000, true] },
  { default: [20, false], fallback: [20, false] },
  { default: [0, false], fallback: [5000, false] },
];
const DURATION_SECS = STAGES.length * STAGE_SECS;
// The checker's window: `to` 1.5 s in the past whatever the stage length, and 1.35 stages
// long, i.e. exactly [now - 15 s, now - 1.5 s] with 10 s stages.
const CHECK_TO_OFFSET_MS = 1500;
const CHECK_FROM_OFFSET_MS = CHECK_TO_OFFSET_MS + 1350 * STAGE_SECS;
const FINAL_WINDOW_MS = (DURATION_SECS + 10) * 1000;
// The JSON number literal every payment carries.
const AMOUNT_LITERAL = "19.90";

function stageScenarios() {
  const scenarios = {};
  for (let i = 1; i < STAGES.length; i++) {
    scenarios[`stage_${i}`] = {
      executor: "shared-iterations",
      exec: "defineStage",
      vus: 1,
      iterations: 1,
      startTime: `${i * STAGE_SECS}s`,
      maxDuration: `${STAGE_SECS}s`,
    };
  }
  return scenarios;
}

export const options = {
  summaryTrendStats: ["min", "med", "avg", "p(90)", "p(99)", "p(99.9)", "max", "count"],
  scenarios: Object.assign(
    {
      payments: {
        executor: "ramping-vus",
        exec: "payments",
        startVUs: 1,
        gracefulRampDown: "0s",
        stages: [{ target: MAX_REQUESTS, duration: `${DURATION_SECS}s` }],
      },
      checker: {
        executor: "constant-vus",
        exec: "checker",
        vus: 1,
        duration: `${DURATION_SECS}s`,
      },
    },
    stageScenarios(),
  ),
};

const accepted = new Counter("payments_accepted");
const rejected = new Counter("payments_rejected");
const timeouts = new Counter("payments_timeouts");
const errors = new Counter("payments_errors");
const consistencyChecks = new Counter("consistency_checks");
const inconsistencies = new Counter("inconsistencies");
const checkErrors = new Counter("check_errors");
// When each check ran (ms since the epoch), one counter per check: handleSummary sees only
// aggregated metrics, and a counter's one sample is its total. With it the result lists
// the exact windows checked, so they can be checked again once the backend has settled.
const checkTimes = STAGES.map((_, i) => new Counter(`check_${i + 1}_at_ms`));
// Final figures, recorded once by teardown (money in integer cents).
const backendDefaultRequests = new Counter("final_backend_default_requests");
const backendDefaultCents = new Counter("final_backend_default_cents");
const backendFallbackRequests = new Counter("final_backend_fallback_requests");
const backendFallbackCents = new Counter("final_backend_fallback_cents");
const processorDefaultRequests = new Counter("final_processor_default_requests");
const processorFallbackRequests = new Counter("final_processor_fallback_requests");
const defaultFeeBasisPoints = new Counter("final_default_fee_bp");
const fallbackFeeBasisPoints = new Counter("final_fallback_fee_bp");

const processorParams = {
  headers: { "X-Rinha-Token": PROCESSOR_TOKEN, "Content-Type": "application/json" },
  timeout: "5s",
};

function cents(amount) {
  return Math.round(Number(amount) * 100);
}

function setConditions(url, delay, failing) {
  http.put(`${url}/admin/configurations/delay`, JSON.stringify({ delay: delay }), processorParams);
  http.put(`${url}/admin/configurations/failure`, JSON.stringify({ failure: failing }), processorParams);
}

function applyStage(index) {
  const stage = STAGES[index];
  setConditions(DEFAULT_URL, stage.default[0], stage.default[1]);
  setConditions(FALLBACK_URL, stage.fallback[0], stage.fallback[1]);
}

function windowQuery(fromMs, toMs) {
  return `from=${new Date(fromMs).toISOString()}&to=${new Date(toMs).toISOString()}`;
}

// The window a check made at `now` asks for.
function checkWindow(now) {
  return {
    from: new Date(now - CHECK_FROM_OFFSET_MS).toISOString(),
    to: new Date(now - CHECK_TO_OFFSET_MS).toISOString(),
  };
}

function backendSummary(query) {
  const res = http.get(`${BACKEND_URL}/payments-summary?${query}`, { timeout: "5s" });
  if (res.status !== 200) {
    throw new Error(`backend summary: HTTP ${res.status}`);
  }
  return res.json();
}

function processorSummary(url, query) {
  const res = http.get(`${url}/admin/payments-summary?${query}`, processorParams);
  if (res.status !== 200) {
    throw new Error(`processor summary ${url}: HTTP ${res.status}`);
  }
  return res.json();
}

export function setup() {
  const purgeHeaders = ADMIN_TOKEN ? { "X-Admin-Token": ADMIN_TOKEN } : {};
  const purged = http.post(`${BACKEND_URL}/purge-payments`, null, { headers: purgeHeaders, timeout: "5s" });
  if (purged.status < 200 || purged.status > 299) {
    exec.test.abort(`purging the backend: HTTP ${purged.status}`);
  }
  for (const url of [DEFAULT_URL, FALLBACK_URL]) {
    const res = http.post(`${url}/admin/purge-payments`, null, processorParams);
    if (res.status !== 200) {
      exec.test.abort(`purging ${url}: HTTP ${res.status}`);
    }
  }
  applyStage(0);
}

export function payments() {
  const body = `{"correlationId":"${crypto.randomUUID()}","amount":${AMOUNT_LITERAL}}`;
  const res = http.post(`${BACKEND_URL}/payments`, body, {
    headers: { "Content-Type": "application/json" },
    timeout: `${TIMEOUT_MS}ms`,
    tags: { name: "payments" },
  });
  if (res.status >= 200 && res.status < 300) {
    accepted.add(1);
  } else if (res.status === 0 && res.error_code === 1050) {
    timeouts.add(1);
  } else if (res.status === 0) {
    errors.add(1);
  } else {
    rejected.add(1, { status: String(res.status) });
  }
  sleep(1);
}

export function checker() {
  sleep(STAGE_SECS);
  const now = Date.now();
  const index = exec.vu.iterationInScenario;
  if (index < checkTimes.length) {
    checkTimes[index].add(now);
  }
  const window = checkWindow(now);
  const query = `from=${window.from}&to=${window.to}`;
  try {
    const backend = backendSummary(query);
    const def = processorSummary(DEFAULT_URL, query);
    const fb = processorSummary(FALLBACK_URL, query);
    consistencyChecks.add(1);
    const consistent =
      backend.default.totalRequests === def.totalRequests &&
      backend.fallback.totalRequests === fb.totalRequests;
    if (!consistent) {
      inconsistencies.add(1);
      console.warn(
        `inconsistency at ${query}: backend ${backend.default.totalRequests}/${backend.fallback.totalRequests}, ` +
          `processors ${def.totalRequests}/${fb.totalRequests}`,
      );
    }
  } catch (e) {
    checkErrors.add(1);
    console.warn(`check failed: ${e}`);
  }
}

export function defineStage() {
  const index = parseInt(exec.scenario.name.replace("stage_", ""), 10);
  applyStage(index);
}

export function teardown() {
  const now = Date.now();
  const query = windowQuery(now - FINAL_WINDOW_MS, now);
  const backend = backendSummary(query);
  const def = processorSummary(DEFAULT_URL, query);
  const fb = processorSummary(FALLBACK_URL, query);
  backendDefaultRequests.add(backend.default.totalRequests);
  backendDefaultCents.add(cents(backend.default.totalAmount));
  backendFallbackRequests.add(backend.fallback.totalRequests);
  backendFallbackCents.add(cents(backend.fallback.totalAmount));
  processorDefaultRequests.add(def.totalRequests);
  processorFallbackRequests.add(fb.totalRequests);
  defaultFeeBasisPoints.add(Math.round(Number(def.feePerTransaction) * 10000));
  fallbackFeeBasisPoints.add(Math.round(Number(fb.feePerTransaction) * 10000));
}

function count(data, name) {
  const m = data.metrics[name];
  return m ? m.values.count : 0;
}

function money(centsValue) {
  return (centsValue / 100).toFixed(2);
}

export function handleSummary(data) {
  const duration = data.metrics.http_req_duration.values;
  const p99 = duration["p(99)"];
  const acceptedCount = count(data, "payments_accepted");
  const defaultCents = count(data, "final_backend_default_cents");
  const fallbackCents = count(data, "final_backend_fallback_cents");
  const grossCents = defaultCents + fallbackCents;
  // Fees in hundredths of a cent (basis points x cents), exact integers.
  const feeCentsX10000 =
    count(data, "final_default_fee_bp") * defaultCents + count(data, "final_fallback_fee_bp") * fallbackCents;
  const netCents = grossCents - feeCentsX10000 / 10000;
  const bonus = Math.max((11 - p99) * 0.02, 0);
  const inconsistencyCount = count(data, "inconsistencies");
  const fine = inconsistencyCount > 0 ? 0.35 : 0;
  const scoreCents = Math.round(netCents * (1 + bonus - fine));
  const reported = count(data, "final_backend_default_requests") + count(data, "final_backend_fallback_requests");
  const reasons = [];
  if (count(data, "final_backend_default_requests") > count(data, "final_processor_default_requests")) {
    reasons.push("backend reports more default payments than the default processor stored");
  }
  if (count(data, "final_backend_fallback_requests") > count(data, "final_processor_fallback_requests")) {
    reasons.push("backend reports more fallback payments than the fallback processor stored");
  }
  if (reported > acceptedCount) {
    reasons.push(`backend reports ${reported} payments, only ${acceptedCount} were accepted`);
  }

  const result = {
    score: money(scoreCents),
    disqualified: reasons.length > 0,
    disqualified_reasons: reasons,
    gross: money(grossCents),
    fees: money(Math.round(feeCentsX10000 / 10000)),
    p99_ms: p99,
    bonus: bonus,
    fine: fine,
    inconsistencies: inconsistencyCount,
    checks: count(data, "consistency_checks"),
    check_errors: count(data, "check_errors"),
    check_windows: checkTimes
      .map((_, i) => count(data, `check_${i + 1}_at_ms`))
      .filter((at) => at > 0)
      .map(checkWindow),
    requests: {
      accepted: acceptedCount,
      rejected: count(data, "payments_rejected"),
      timeouts: count(data, "payments_timeouts"),
      errors: count(data, "payments_errors"),
    },
    latency_ms: {
      p50: duration.med,
      p90: duration["p(90)"],
      p99: p99,
      p999: duration["p(99.9)"],
      max: duration.max,
    },
    default: {
      requests: count(data, "final_backend_default_requests"),
      amount: money(defaultCents),
      processor_requests: count(data, "final_processor_default_requests"),
    },
    fallback: {
      requests: count(data, "final_backend_fallback_requests"),
      amount: money(fallbackCents),
      processor_requests: count(data, "final_processor_fallback_requests"),
    },
    lag: acceptedCount - reported,
    settings: {
      backend_url: BACKEND_URL,
      max_requests: MAX_REQUESTS,
      stage_secs: STAGE_SECS,
      duration_secs: DURATION_SECS,
      check_from_offset_ms: CHECK_FROM_OFFSET_MS,
      check_to_offset_ms: CHECK_TO_OFFSET_MS,
    },
  };

  const lines = [
    `score                 ${result.score}${result.disqualified ? "  DISQUALIFIED: " + reasons.join("; ") : ""}`,
    `gross / fees          ${result.gross} / ${result.fees}`,
    `p99 / bonus / fine    ${p99.toFixed(3)} ms / ${bonus.toFixed(5)} / ${fine}`,
    `inconsistencies       ${inconsistencyCount} of ${result.checks} checks (${result.check_errors} check errors)`,
    `latency ms            p50 ${duration.med.toFixed(3)}  p90 ${duration["p(90)"].toFixed(3)}  p99 ${p99.toFixed(3)}  max ${duration.max.toFixed(3)}`,
    `payments              accepted ${acceptedCount}  rejected ${result.requests.rejected}  timeouts ${result.requests.timeouts}  errors ${result.requests.errors}`,
    `default               ${result.default.requests} payments, ${result.default.amount}`,
    `fallback              ${result.fallback.requests} payments, ${result.fallback.amount}`,
    `lag                   ${result.lag}`,
    `written               ${RESULT_FILE}`,
    "",
  ];
  const out = { stdout: lines.join("\n") };
  out[RESULT_FILE] = JSON.stringify(result, null, 2);
  return out;
}
