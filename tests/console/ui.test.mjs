// The web console in a real browser: Debian's Chromium driven by
// playwright-core, through what the page contract names only (roles,
// accessible names, the ids error, notice, enroll-result, try-result,
// verify-result, and the hash routes), so that the checks hold whatever the
// markup. Every outcome is also checked against the REST API (with the
// tokens of tests/integration/lib.sh) or the database.
//
// Run by tests/integration/test_console_ui.sh, which starts provd and the
// simulated devices and passes what they are in UI_FIXTURE (a JSON file).
// Prints one line per check, "ok - NAME" or "not ok - NAME" with indented
// details, and exits 1 when a check failed.

import { chromium, request } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const fx = JSON.parse(fs.readFileSync(process.env.UI_FIXTURE, 'utf8'));
const CONSOLE = `${fx.url}/console/`;
const T_STEP = 5000;		// a click, a fill, a text to appear
const T_JOB = 10000;		// an enrollment over the simulated radio
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const REQ_ID_RE = /\(request id ([0-9a-f]{16})\)\s*$/;
const ELLIPSIS = '\u2026';
const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

// --- output ----------------------------------------------------------------

let failed = 0;
const detail = (line) => console.log(`    ${line}`);
function notOk(name, err) {
	failed++;
	console.log(`not ok - ${name}`);
	// Playwright's messages carry a long call log: its first lines are enough
	const text = err instanceof Error ? err.message : String(err);
	for (const line of text.split('\n').filter((l) => l.trim() !== '').slice(0, 12))
		detail(line.trimEnd());
}

// A failed step() ends its scenario (what follows depends on it); a failed
// check() does not.
class Stop extends Error {}
async function check(name, fn) {
	try {
		await fn();
		console.log(`ok - ${name}`);
		return true;
	} catch (e) {
		notOk(name, e);
		return false;
	}
}
async function step(name, fn) {
	if (!(await check(name, fn)))
		throw new Stop(name);
}

// --- assertions ------------------------------------------------------------

const show = (v) => JSON.stringify(v);
function assert(cond, msg) {
	if (!cond)
		throw new Error(msg);
}
function eq(actual, expected, what) {
	if (show(actual) !== show(expected))
		throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// until(fn, what): polls fn until it returns something truthy (which is
// returned); fn may throw meanwhile. Fails with the last value or error.
async function until(fn, what, timeout = T_STEP) {
	const end = Date.now() + timeout;
	let last;
	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
			last = v;
		} catch (e) {
			last = e.message.split('\n')[0];
		}
		if (Date.now() > end)
			throw new Error(`${what} (waited ${timeout} ms; last: ${show(last)})`);
		await sleep(100);
	}
}
// The text of a locator (one element), trimmed, with white space folded.
async function text(loc) {
	return ((await loc.textContent({ timeout: T_STEP })) ?? '').replace(/\s+/g, ' ').trim();
}
// waitText(loc, want): the element's text becomes want (a string: equal,
// or a RegExp); returns the text.
async function waitText(loc, want, what, timeout = T_STEP) {
	let last = null;
	try {
		return await until(async () => {
			last = await text(loc);
			return (typeof want === 'string' ? last === want : want.test(last)) && last;
		}, what, timeout);
	} catch (e) {
		throw new Error(`${what}: wanted ${want instanceof RegExp ? want : show(want)}, the page shows ${show(last)}`);
	}
}

// --- the REST API, with the test's tokens -----------------------------------

const token = (role) => fs.readFileSync(fx.tokens[role], 'utf8').trim();
const api = await request.newContext({ baseURL: fx.url });
async function call(method, p, { role = 'admin', body } = {}) {
	const headers = role ? { Authorization: `Bearer ${token(role)}` } : {};
	const r = await api.fetch(p, { method, headers, data: body, timeout: T_STEP });
	let json = null;
	try {
		json = await r.json();
	} catch {
		// no body
	}
	return { status: r.status(), body: json };
}
async function device(mac) {
	const r = await call('GET', `/v1/devices/${mac}`);
	eq(r.status, 200, `GET /v1/devices/${mac}`);
	return r.body;
}
async function authorize(mac, resource, action) {
	const r = await call('POST', '/v1/authorize', { role: 'authorizer', body: { device: { mac }, resource, action } });
	eq(r.status, 200, 'POST /v1/authorize');
	return r.body;
}
async function policy() {
	const r = await call('GET', '/v1/policy');
	eq(r.status, 200, 'GET /v1/policy');
	return r.body;
}
const allRules = (p) => p.resources.flatMap((res) => res.rules.map((rule) => ({ ...rule, resource: res.name })));
// Waits until this provd's decision cache has the database's policy, so
// that a question asked next sees the last change.
async function cacheCurrent() {
	await until(async () => {
		const p = await policy();
		return p.cache.loaded && p.cache.policy_version === p.policy_version;
	}, 'the decision cache catches up with the policy');
}
function psql(sql) {
	return execFileSync('psql', ['-X', '-q', '-At', '-c', sql], { encoding: 'utf8' }).trim();
}

// --- the browser ------------------------------------------------------------

// Debian's Chromium (no browser download). Playwright starts it with a new
// empty profile directory of its own (under TMPDIR, removed at close) and
// refuses a --user-data-dir among the arguments.
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: LAUNCH_ARGS, timeout: 20000 });

// What every page of every scenario did, checked at the end: the API calls
// (did changes carry X-CSRF-Token, did calls carry the cookie), script
// errors and Content-Security-Policy refusals.
const apiCalls = [];
const pageErrors = [];

// A fresh browser context per scenario; the page is screenshotted at the
// end, whatever happened.
async function scenario(name, fn, contextOptions = {}) {
	const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
	context.setDefaultTimeout(T_STEP);
	context.setDefaultNavigationTimeout(10000);
	context.on('request', (req) => {
		const u = new URL(req.url());
		if (!u.pathname.startsWith('/v1/'))
			return;
		apiCalls.push(req.allHeaders().then((h) => ({
			scenario: name, method: req.method(), path: u.pathname,
			csrf: 'x-csrf-token' in h, cookie: /(^|;\s*)provd_session=/.test(h.cookie ?? ''),
			probe: 'x-test-probe' in h,
		})).catch(() => null));
	});
	const page = await context.newPage();
	page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
	page.on('console', (m) => {
		// a failed fetch is logged by Chromium as "Failed to load resource":
		// expected here (401, 403, 409 are part of the scenarios)
		if (m.type() === 'error' && !/^Failed to load resource/.test(m.text()))
			pageErrors.push(`${name}: console: ${m.text()}`);
	});
	try {
		await fn(page, context);
	} catch (e) {
		if (!(e instanceof Stop))
			notOk(`${name}: ran to the end`, e);
		else
			console.log(`# ${name}: the rest of this scenario skipped after the failed step`);
	} finally {
		await page.screenshot({ path: path.join(fx.shots, `${name}.png`), fullPage: true })
			.catch((e) => console.log(`# ${name}: no screenshot: ${e.message.split('\n')[0]}`));
		await context.close();
	}
}

// --- page helpers (contract names only) -------------------------------------

const nameBox = (page) => page.getByRole('textbox', { name: 'Name', exact: true });
const passwordBox = (page) => page.getByLabel('Password', { exact: true });
const loginButton = (page) => page.getByRole('button', { name: 'Log in', exact: true });
const banner = (page) => page.getByRole('banner');
const sections = (page) => page.getByRole('navigation', { name: 'Sections', exact: true });
const heading = (page, name) => page.getByRole('heading', { name, exact: true });
const button = (scope, name) => scope.getByRole('button', { name, exact: true });
const textbox = (scope, name) => scope.getByRole('textbox', { name, exact: true });
const combobox = (scope, name) => scope.getByRole('combobox', { name, exact: true });
const table = (scope, name) => scope.getByRole('table', { name, exact: true });
const errorBox = (page) => page.locator('#error');
const notice = (page) => page.locator('#notice');
const whoText = (acct) => `Logged in as ${acct.name} (${acct.role})`;
// "Logged in as" where it can be seen (the page may keep it hidden)
const loggedInAs = (page) => page.getByText('Logged in as').filter({ visible: true });
// The route of the page, decoded (#/devices/00%3A1a... is #/devices/00:1a...)
// and without the parameters a page may keep after "?" (#/intake?mac=...).
const hashOf = (page) => decodeURIComponent(new URL(page.url()).hash).replace(/\?.*$/, '');
// A text field: role textbox, or searchbox (a textbox of type search).
const textField = (scope, name) => scope.getByRole('textbox', { name, exact: true })
	.or(scope.getByRole('searchbox', { name, exact: true }));

async function loginForm(page, acct) {
	await nameBox(page).fill(acct.name);
	await passwordBox(page).fill(acct.password);
	await loginButton(page).click();
}
async function login(page, acct) {
	await page.goto(CONSOLE);
	await loginForm(page, acct);
	await banner(page).getByText(whoText(acct)).waitFor();
}
// route(page, '#/devices'): goes to a route (a deep link, as typed or
// bookmarked) and waits for its heading
async function route(page, hash, headingName) {
	await page.goto(CONSOLE + hash);
	await heading(page, headingName).waitFor();
}
// The value next to a term of a definition list (device detail).
function definition(page, term) {
	return page.locator('dl dt').filter({ hasText: new RegExp(`^\\s*${term}\\s*$`) })
		.first().locator('xpath=following-sibling::dd[1]');
}
// The rows of a table as text: { cols: header texts, rows: [[cell texts]] }.
async function readTable(loc) {
	return loc.evaluate((t) => {
		const all = [...t.rows];
		const head = all.find((r) => r.cells.length && [...r.cells].every((c) => c.tagName === 'TH'));
		const fold = (s) => s.replace(/\s+/g, ' ').trim();
		return {
			cols: head ? [...head.cells].map((c) => fold(c.textContent)) : [],
			rows: all.filter((r) => r !== head).map((r) => [...r.cells].map((c) => fold(c.textContent))),
		};
	});
}
// The addresses listed in the "Devices" results table, in order.
async function listedDevices(page) {
	const links = await table(page, 'Devices').getByRole('link').allTextContents();
	return links.map((s) => s.trim()).filter((s) => MAC_RE.test(s));
}
// The options of a select, by value and by label.
async function options(loc) {
	return loc.evaluate((s) => [...s.options].map((o) => [o.value, o.textContent.trim()]));
}
function hasOptions(opts, want) {
	const missing = want.filter((w) => !opts.some(([v, l]) => v === w || l === w));
	assert(missing.length === 0, `options missing: ${show(missing)} (has ${show(opts)})`);
}
// fetch from the page (same origin, its cookie); returns status and code
async function pageFetch(page, method, p, { csrf = null, body = null } = {}) {
	return page.evaluate(async ({ method, p, csrf, body }) => {
		const headers = { 'X-Test-Probe': '1' };
		if (csrf !== null)
			headers['X-CSRF-Token'] = csrf;
		if (body !== null)
			headers['Content-Type'] = 'application/json';
		const r = await fetch(p, { method, headers, credentials: 'same-origin',
			body: body === null ? undefined : JSON.stringify(body) });
		let j = null;
		try {
			j = await r.json();
		} catch {
			// no body
		}
		return { status: r.status, code: j?.error?.code ?? null, body: j };
	}, { method, p, csrf, body });
}
async function csrfOf(page) {
	const s = await pageFetch(page, 'GET', '/v1/session');
	eq(s.status, 200, 'GET /v1/session from the page');
	return s.body.csrf_token;
}

// Every visible form field of the page and whether Chromium computes an
// accessible name for it (through the DevTools accessibility tree, as a
// screen reader gets it). A name taken only from a placeholder or a title
// does not count as a label.
async function unnamedFields(page) {
	const cdp = await page.context().newCDPSession(page);
	const bad = [];
	let seen = 0;
	try {
		await cdp.send('Accessibility.enable');
		const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
		const { nodeIds } = await cdp.send('DOM.querySelectorAll', { nodeId: root.nodeId, selector: 'input, select, textarea' });
		for (const nodeId of nodeIds) {
			const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
			const ax = nodes.find((n) => !n.ignored && n.backendDOMNodeId !== undefined) ?? null;
			if (!ax)
				continue;	// hidden, not rendered, type=hidden
			seen++;
			const name = (ax.name?.value ?? '').trim();
			const used = (ax.name?.sources ?? []).find((s) => s.value && !s.superseded);
			const weak = used && (used.attribute === 'placeholder' || used.attribute === 'title');
			if (!name || weak) {
				const { attributes } = await cdp.send('DOM.getAttributes', { nodeId });
				const attrs = [];
				for (let i = 0; i < attributes.length; i += 2)
					attrs.push(`${attributes[i]}="${attributes[i + 1]}"`);
				bad.push(`${ax.role?.value ?? '?'} [${attrs.join(' ')}]${weak ? ` named only by its ${used.attribute}` : ''}`);
			}
		}
	} finally {
		await cdp.detach().catch(() => {});
	}
	return { seen, bad };
}
async function allNamed(page, where) {
	const { seen, bad } = await unnamedFields(page);
	assert(bad.length === 0, `${where}: ${bad.length} of ${seen} fields without an accessible name:\n${bad.join('\n')}`);
	return seen;
}

// ============================================================================
// Scenarios
// ============================================================================

// the accounts, with their passwords (from the files the shell made)
const A = Object.fromEntries(Object.entries(fx.accounts).map(([k, a]) =>
	[k, { ...a, password: fs.readFileSync(a.password_file, 'utf8').split('\n')[0] }]));

// --- logging in and out (operator) --------------------------------------------
await scenario('login-logout', async (page, context) => {
	await page.goto(CONSOLE);
	await step('login page: textbox Name, Password, button Log in', async () => {
		await nameBox(page).waitFor();
		await passwordBox(page).waitFor();
		await loginButton(page).waitFor();
	});
	await check('login page: no nav Sections before logging in', async () => {
		eq(await sections(page).count(), 0, 'visible nav Sections');
	});
	await loginForm(page, A.operator);
	await step(`login: the banner says "${whoText(A.operator)}"`, async () => {
		await banner(page).getByText(whoText(A.operator)).waitFor();
	});
	await check('login: button Log out in the banner', async () => {
		await button(banner(page), 'Log out').waitFor();
	});
	await check('login: nav Sections with Overview, Intake, Devices, Access rules, Audit', async () => {
		const nav = sections(page);
		await nav.waitFor();
		const links = (await nav.getByRole('link').allTextContents()).map((s) => s.trim());
		eq(links, ['Overview', 'Intake', 'Devices', 'Access rules', 'Audit'], 'links');
	});
	await check('login: the first page is #/overview with the heading Overview (h2)', async () => {
		await page.getByRole('heading', { name: 'Overview', exact: true, level: 2 }).waitFor();
		eq(hashOf(page), '#/overview', 'route');
	});
	await check('overview: sections Devices by status, Enrollments per day, Certificates expiring per week, Revocations in the last 24 hours', async () => {
		for (const h of ['Devices by status', 'Enrollments per day', 'Certificates expiring per week', 'Revocations in the last 24 hours'])
			await heading(page, h).waitFor();
	});
	await check('overview: the charts are svg role=img with an aria-label giving the data', async () => {
		const charts = page.locator('svg[role="img"]');
		await until(async () => (await charts.count()) >= 1, 'a chart');
		const labels = await charts.evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? ''));
		assert(labels.every((l) => l.trim() !== ''), `charts without an aria-label: ${show(labels)}`);
		assert(labels.some((l) => /\d/.test(l)), `no chart label gives a figure: ${show(labels)}`);
		detail(`${labels.length} charts, e.g. ${show(labels[0])}`);
	});
	await check('login: the session cookie is HttpOnly and SameSite=Strict', async () => {
		const c = (await context.cookies()).find((x) => x.name === 'provd_session');
		assert(c, 'no provd_session cookie');
		assert(c.httpOnly && c.sameSite === 'Strict', `cookie ${show(c)}`);
	});
	await step('logout: Log out brings the login form back', async () => {
		await button(banner(page), 'Log out').click();
		await nameBox(page).waitFor();
		await loginButton(page).waitFor();
	});
	await check('logout: no "Logged in as" and no nav Sections any more', async () => {
		await until(async () => (await loggedInAs(page).count()) === 0
			&& !(await sections(page).isVisible()), 'the banner and the nav cleared');
	});
	await check('logout: the cookie is gone and the session ended on the server', async () => {
		const c = (await context.cookies()).find((x) => x.name === 'provd_session');
		assert(!c, `cookie still there: ${show(c)}`);
		eq((await pageFetch(page, 'GET', '/v1/session')).status, 401, 'GET /v1/session');
	});
	await check('logout: a reload still shows the login form', async () => {
		await page.reload();
		await nameBox(page).waitFor();
	});
});

// --- a wrong password, and throttling -----------------------------------------
await scenario('wrong-password', async (page, context) => {
	await page.goto(CONSOLE);
	await loginForm(page, { ...A.operator, password: 'not-the-password-0' });
	await check('wrong password: role=alert says "The name or the password is wrong."', async () => {
		await page.getByRole('alert').filter({ hasText: 'The name or the password is wrong.' }).waitFor();
	});
	await check('wrong password: no session cookie, still the login form', async () => {
		const names = (await context.cookies()).map((c) => c.name);
		assert(!names.includes('provd_session'), `cookies: ${show(names)}`);
		await nameBox(page).waitFor();
		eq(await loggedInAs(page).count(), 0, '"Logged in as" shown');
	});
	// the throttled account: five failures over the API, the sixth on the page
	await check(`throttled: ${fx.login_fail_max} wrong passwords for ${A.throttled.name} over the API (401 each)`, async () => {
		for (let i = 0; i < fx.login_fail_max; i++) {
			const r = await call('POST', '/v1/session', { role: null, body: { name: A.throttled.name, password: `wrong-password-${i}-xx` } });
			eq(r.status, 401, `attempt ${i + 1}`);
		}
	});
	await loginForm(page, A.throttled);
	await check('throttled: role=alert starts "Too many failed logins", even with the right password', async () => {
		await until(async () => {
			const t = await page.getByRole('alert').allTextContents();
			return t.some((s) => s.trim().startsWith('Too many failed logins'));
		}, 'the throttle alert');
		const names = (await context.cookies()).map((c) => c.name);
		assert(!names.includes('provd_session'), 'a session cookie was set');
	});
});

// --- intake of a simulated device through the page (operator) -----------------
await scenario('intake', async (page) => {
	const E = fx.enroll;
	const F = fx.failing;
	// the X-Request-Id of every failed API call, to compare with what the page shows
	const failedIds = [];
	page.on('response', (r) => {
		if (r.url().includes('/v1/') && r.status() >= 400)
			failedIds.push(r.headers()['x-request-id']);
	});
	await login(page, A.operator);
	await step('intake: nav Intake opens #/intake with the heading Intake', async () => {
		await sections(page).getByRole('link', { name: 'Intake', exact: true }).click();
		await heading(page, 'Intake').waitFor();
		eq(hashOf(page), '#/intake', 'route');
	});
	const inRange = table(page, 'Devices in range');
	await step(`intake: "Devices in range" lists ${E.mac} (${E.name})`, async () => {
		await until(async () => {
			const t = await readTable(inRange);
			return t.rows.some((r) => r.includes(E.mac) && r.includes(E.name));
		}, `a row with ${E.mac} and ${E.name}`);
	});
	await check('intake: "Devices in range" has the columns Address, Name, Class, Signal', async () => {
		const t = await readTable(inRange);
		for (const c of ['Address', 'Name', 'Class', 'Signal'])
			assert(t.cols.includes(c), `columns ${show(t.cols)}`);
	});
	await check(`intake: "Last scan at HH:MM:SS: ${fx.in_range} devices in range"`, async () => {
		await until(async () => (await page.getByText(new RegExp(`Last scan at \\d\\d:\\d\\d:\\d\\d: ${fx.in_range} devices in range`)).count()) === 1,
			'the scan line');
	});
	await check('intake: the page scans again every few seconds (the scan time changes)', async () => {
		const scanLine = page.getByText(/Last scan at \d\d:\d\d:\d\d/);
		const first = await text(scanLine);
		await until(async () => (await text(scanLine)) !== first, `a scan after "${first}"`, 10000);
	});
	const form = page.getByRole('form', { name: 'Enroll a device', exact: true });
	await step(`intake: "Enroll ${E.mac}" fills the read-only Device address`, async () => {
		await button(page, `Enroll ${E.mac}`).click();
		const addr = textbox(form, 'Device address');
		await until(async () => (await addr.inputValue()) === E.mac, `Device address = ${E.mac}`);
		assert(!(await addr.isEditable()), 'Device address is editable');
	});
	await check('intake: the focus moves to Label address', async () => {
		await until(() => textbox(form, 'Label address').evaluate((el) => el === document.activeElement), 'focus on Label address');
	});
	await check('intake: the form has Key pair made by (auto, device, server) and Replace the current certificate', async () => {
		hasOptions(await options(combobox(form, 'Key pair made by')), ['auto', 'device', 'server']);
		await form.getByRole('checkbox', { name: 'Replace the current certificate', exact: true }).waitFor();
	});
	await textbox(form, 'Label address').fill(E.label);
	await form.getByLabel('PIN', { exact: true }).fill(E.pin);
	await textbox(form, 'Owner').fill(E.owner);
	await textbox(form, 'Groups').fill(E.groups.join(', '));
	await button(form, 'Enroll').click();
	let serial = null;
	await step(`intake: #enroll-result says "Enrolled ${E.mac}: certificate <serial>."`, async () => {
		const t = await waitText(page.locator('#enroll-result'), new RegExp(`^Enrolled ${E.mac}: certificate ([0-9a-f]{32})\\.$`),
			'#enroll-result', T_JOB);
		serial = t.match(/certificate ([0-9a-f]{32})/)[1];
		eq(await page.locator('#enroll-result').getAttribute('role'), 'status', '#enroll-result role');
	});
	await check('intake: the list "Enrollment progress" shows each step with its time', async () => {
		const items = (await page.getByRole('list', { name: 'Enrollment progress', exact: true }).getByRole('listitem').allTextContents())
			.map((s) => s.replace(/\s+/g, ' ').trim());
		assert(items.length >= 4, `items ${show(items)}`);
		assert(items[0].startsWith('link'), `first step ${show(items[0])}`);
		for (const s of ['link', 'ca', 'push', 'record'])
			assert(items.some((i) => i.startsWith(s) && /\d+ ms/.test(i)), `no timed step ${s}: ${show(items)}`);
		detail(items.join('; '));
	});
	await check(`intake: the API has ${E.mac} active, owner ${E.owner}, groups ${E.groups}, with that certificate`, async () => {
		const d = await device(E.mac);
		eq([d.status, d.owner, d.groups, d.name, d.certificate?.serial, d.certificate?.status],
			['active', E.owner, E.groups, E.name, serial, 'active'], 'device');
	});
	await check(`intake: the link "Open device ${E.mac}" opens its page`, async () => {
		await page.getByRole('link', { name: `Open device ${E.mac}`, exact: true }).click();
		await heading(page, `Device ${E.mac}`).waitFor();
		eq(hashOf(page), `#/devices/${E.mac}`, 'route');
		const raw = new URL(page.url()).hash;
		if (raw !== hashOf(page))
			detail(`the address bar shows ${raw}`);
	});

	// a label that is not the device's: refused by provd, shown with its request id
	await sections(page).getByRole('link', { name: 'Intake', exact: true }).click();
	await heading(page, 'Intake').waitFor();
	await button(page, `Enroll ${F.mac}`).click();
	await until(async () => (await textbox(form, 'Device address').inputValue()) === F.mac, `Device address = ${F.mac}`);
	await textbox(form, 'Label address').fill(F.wrong_label);
	await form.getByLabel('PIN', { exact: true }).fill(F.wrong_pin);
	failedIds.length = 0;
	await button(form, 'Enroll').click();
	await check('intake, wrong label: #error (role=alert) gives a sentence and "(request id X)"', async () => {
		const t = await waitText(errorBox(page), /^\S.*\(request id [0-9a-f]{16}\)$/, '#error');
		eq(await errorBox(page).getAttribute('role'), 'alert', '#error role');
		const id = t.match(REQ_ID_RE)[1];
		assert(failedIds.includes(id), `request id ${id} is not the X-Request-Id of a failed call (${show(failedIds)})`);
		detail(t);
	});
	// the right label and a wrong PIN: the job fails at the PIN exchange
	await textbox(form, 'Label address').fill(F.label);
	await form.getByLabel('PIN', { exact: true }).fill(F.wrong_pin);
	await button(form, 'Enroll').click();
	await check('intake, wrong PIN: #enroll-result says "Failed at link: ..."', async () => {
		const t = await waitText(page.locator('#enroll-result'), /^Failed at link: \S/, '#enroll-result', T_JOB);
		detail(t);
	});
	await check(`intake, wrong label and PIN: ${F.mac} is not a device (API 404)`, async () => {
		eq((await call('GET', `/v1/devices/${F.mac}`)).status, 404, `GET /v1/devices/${F.mac}`);
	});
});

// --- the device search (operator) ---------------------------------------------
await scenario('search', async (page) => {
	const S = fx.search;
	// what the API lists for a query (the first page of 1000)
	const apiList = async (query) => {
		const r = await call('GET', `/v1/devices?${query ? `${query}&` : ''}limit=1000`);
		eq(r.status, 200, `GET /v1/devices?${query}`);
		return r.body.devices.map((d) => d.mac);
	};
	// search(fields): fills the search form (empty fields cleared) and
	// submits it with Enter in the first field given, or the Search button
	const form = page.getByRole('form', { name: 'Search devices', exact: true });
	const q = textField(form, 'Address, name or owner');
	const owner = textbox(form, 'Owner');
	const search = async ({ text = '', own = '', enter = false }) => {
		await q.fill(text);
		await owner.fill(own);
		if (enter)
			await q.press('Enter');
		else
			await button(form, 'Search').click();
	};
	const listed = (want, what) => until(async () => show(await listedDevices(page)) === show(want) || null,
		`${what}: the table lists ${show(want)}`).catch(async (e) => {
		throw new Error(`${e.message.split(' (waited')[0]}; it lists ${show(await listedDevices(page))}`);
	});

	await login(page, A.operator);
	await step('devices: nav Devices opens #/devices with the heading Devices and the form Search devices', async () => {
		await sections(page).getByRole('link', { name: 'Devices', exact: true }).click();
		await heading(page, 'Devices').waitFor();
		await form.waitFor();
		eq(hashOf(page), '#/devices', 'route');
	});
	await check('devices: the form has Status (any, pending, active, revoked, retired), Group, Expires before', async () => {
		hasOptions(await options(combobox(form, 'Status')), ['any', 'pending', 'active', 'revoked', 'retired']);
		await textbox(form, 'Group').waitFor();
		await form.getByLabel('Expires before', { exact: true }).waitFor();
	});
	await check('devices: the table Devices has the columns Address, Name, Model, Owner, Status, Expires', async () => {
		await until(async () => (await listedDevices(page)).length > 0, 'a listed device');
		const t = await readTable(table(page, 'Devices'));
		for (const c of ['Address', 'Name', 'Model', 'Owner', 'Status', 'Expires'])
			assert(t.cols.includes(c), `columns ${show(t.cols)}`);
	});
	const byPrefix = await apiList(`q=${encodeURIComponent(S.prefix)}`);
	await check(`search by address prefix ${S.prefix} (Enter): the devices the API finds`, async () => {
		assert(byPrefix.includes(fx.revoke.mac) && byPrefix.includes(fx.renew.mac) && byPrefix.length >= 3,
			`the API finds ${show(byPrefix)}`);
		await search({ text: S.prefix, enter: true });
		await listed(byPrefix, 'prefix');
	});
	await check(`search by address prefix: "${byPrefix.length} devices on this page", Next page disabled`, async () => {
		await page.getByText(`${byPrefix.length} devices on this page`, { exact: true }).waitFor();
		assert(await button(page, 'Next page').isDisabled(), 'Next page is enabled on the only page');
	});
	const dora = await apiList(`owner=${S.owner}`);
	await check(`search by Owner ${S.owner}: exactly ${S.owner}'s devices`, async () => {
		assert(dora.length === 2, `the API finds ${show(dora)}`);
		await search({ own: S.owner });
		await listed(dora, 'owner');
		const t = await readTable(table(page, 'Devices'));
		const col = t.cols.indexOf('Owner');
		assert(t.rows.every((r) => r[col] === S.owner), `Owner column ${show(t.rows.map((r) => r[col]))}`);
	});
	await check(`search for an owner's name prefix (${S.owner.slice(0, 3)}) in Address, name or owner`, async () => {
		const want = await apiList(`q=${S.owner.slice(0, 3)}`);
		assert(dora.every((m) => want.includes(m)), `the API finds ${show(want)}`);
		await search({ text: S.owner.slice(0, 3) });
		await listed(want, 'owner prefix');
	});
	await check('search with no match: "No device matches."', async () => {
		await search({ text: S.none });
		await page.getByText('No device matches.', { exact: true }).waitFor();
		eq(await listedDevices(page), [], 'rows');
	});
	// paging over every device (245 of them)
	let first = [];
	await check('paging: the first page of all devices has Next page enabled and First page', async () => {
		await search({});
		// the unfiltered list is longer than the last search's
		await until(async () => (await listedDevices(page)).length > byPrefix.length, 'the unfiltered list');
		await sleep(200);
		first = await listedDevices(page);
		const all = await apiList('');
		eq(first, all.slice(0, first.length), 'first page');
		assert(first.length < all.length, `one page holds all ${all.length} devices`);
		assert(await button(page, 'Next page').isEnabled(), 'Next page disabled');
		await button(page, 'First page').waitFor();
		detail(`${first.length} devices a page, ${all.length} in all`);
	});
	await check('paging: Next page shows the following devices, First page the first again', async () => {
		assert(first.length > 0, 'no first page');
		const all = await apiList('');
		await button(page, 'Next page').click();
		await listed(all.slice(first.length, 2 * first.length), 'page 2');
		await button(page, 'First page').click();
		await listed(first, 'page 1 again');
	});
	await check(`devices: the address link opens #/devices/${fx.renew.mac} with its details`, async () => {
		await search({ text: fx.renew.mac });
		await listed([fx.renew.mac], 'one device');
		await table(page, 'Devices').getByRole('link', { name: fx.renew.mac, exact: true }).click();
		await heading(page, `Device ${fx.renew.mac}`).waitFor();
		eq(hashOf(page), `#/devices/${fx.renew.mac}`, 'route');
		for (const [term, want] of [['Name', fx.renew.name], ['Model', fx.renew.model], ['Owner', fx.renew.owner], ['Status', 'active'], ['Groups', 'lab']])
			await waitText(definition(page, term), want, `term ${term}`);
		for (const caption of ['Certificates', 'Recent authorization decisions', 'Audit trail'])
			await table(page, caption).waitFor();
	});
	await check('device: Re-intake (operator) goes to #/intake with Device address filled and Replace checked', async () => {
		await route(page, `#/devices/${fx.renew.mac}`, `Device ${fx.renew.mac}`);
		await button(page, 'Re-intake').click();
		await heading(page, 'Intake').waitFor();
		eq(hashOf(page), '#/intake', 'route');
		const form = page.getByRole('form', { name: 'Enroll a device', exact: true });
		await until(async () => (await textbox(form, 'Device address').inputValue()) === fx.renew.mac, `Device address = ${fx.renew.mac}`);
		assert(await form.getByRole('checkbox', { name: 'Replace the current certificate', exact: true }).isChecked(), 'Replace not checked');
	});
});

// --- revocation with its dialog (security) ----------------------------------
await scenario('revoke', async (page) => {
	const R = fx.revoke;
	await check(`revoke: before, POST /v1/authorize allows ${R.mac} on ${fx.resource}`, async () => {
		const a = await authorize(R.mac, fx.resource, 'connect');
		eq(a.decision, 'allow', `decision (${a.reason})`);
	});
	await login(page, A.security);
	await step(`revoke: #/devices/${R.mac} shows the device, Status active`, async () => {
		await route(page, `#/devices/${R.mac}`, `Device ${R.mac}`);
		await waitText(definition(page, 'Status'), 'active', 'Status');
	});
	const dialog = page.getByRole('dialog', { name: `Revoke device ${R.mac}`, exact: true });
	await step(`revoke: "Revoke${ELLIPSIS}" opens the dialog "Revoke device ${R.mac}" naming the device`, async () => {
		await button(page, `Revoke${ELLIPSIS}`).click();
		await dialog.waitFor();
		await dialog.getByText(`Revoke the certificate of ${R.mac} (${R.name})? Access points and devices refuse it from now on.`).waitFor();
	});
	await check('revoke: the dialog is modal, with Reason (the six reasons), Revoke and Cancel', async () => {
		const modal = await dialog.evaluate((d) => d.getAttribute('aria-modal') === 'true' || (d.tagName === 'DIALOG' && d.matches(':modal')));
		assert(modal, 'not modal');
		hasOptions(await options(combobox(dialog, 'Reason')),
			['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold']);
		await button(dialog, 'Revoke').waitFor();
		await button(dialog, 'Cancel').waitFor();
	});
	await check('revoke: Cancel closes the dialog and changes nothing (API: active)', async () => {
		await button(dialog, 'Cancel').click();
		await dialog.waitFor({ state: 'hidden' });
		await sleep(300);	// a wrong revocation would have been sent by now
		const d = await device(R.mac);
		eq([d.status, d.certificate.status], ['active', 'active'], 'device, certificate');
		eq(await text(definition(page, 'Status')), 'active', 'Status on the page');
	});
	await step('revoke: Revoke (keyCompromise) shows the notice', async () => {
		await button(page, `Revoke${ELLIPSIS}`).click();
		await dialog.waitFor();
		await combobox(dialog, 'Reason').selectOption('keyCompromise');
		await button(dialog, 'Revoke').click();
		await waitText(notice(page), `Revoked the certificate of ${R.mac}.`, '#notice');
		eq(await notice(page).getAttribute('role'), 'status', '#notice role');
	});
	await check('revoke: the dialog closed and Status shows revoked', async () => {
		await dialog.waitFor({ state: 'hidden' });
		await waitText(definition(page, 'Status'), 'revoked', 'Status');
	});
	await check('revoke: the table Certificates shows the certificate revoked, keyCompromise', async () => {
		const serial = (await device(R.mac)).certificate.serial;
		await until(async () => {
			const t = await readTable(table(page, 'Certificates'));
			return t.rows.some((r) => r.join(' ').includes(serial) && r.includes('revoked') && r.includes('keyCompromise'));
		}, 'a revoked row with the reason');
	});
	await check('revoke: the API has the device and its certificate revoked (keyCompromise)', async () => {
		const d = await device(R.mac);
		eq([d.status, d.certificates[0].status, d.certificates[0].revocation_reason], ['revoked', 'revoked', 'keyCompromise'], 'device');
	});
	await check(`revoke: POST /v1/authorize now denies ${R.mac}`, async () => {
		const a = await until(async () => {
			const x = await authorize(R.mac, fx.resource, 'connect');
			return x.decision === 'deny' && x;
		}, 'a deny');
		detail(`deny: ${a.reason}`);
	});
});

// --- forced renewal (security) ------------------------------------------------
await scenario('force-renewal', async (page) => {
	const R = fx.renew;
	const serial = (await device(R.mac)).certificate.serial;
	const hint = async () => {
		const r = await call('GET', `/v1/renew/${serial}`, { role: null });
		eq(r.status, 200, `GET /v1/renew/${serial}`);
		return r.body;
	};
	await check('force renewal: before, GET /v1/renew/<serial> says renew_now false', async () => {
		eq((await hint()).renew_now, false, 'renew_now');
	});
	await login(page, A.security);
	await route(page, `#/devices/${R.mac}`, `Device ${R.mac}`);
	await step(`force renewal: the notice "${R.mac} will renew its certificate at its next contact."`, async () => {
		await button(page, 'Force renewal').click();
		await waitText(notice(page), `${R.mac} will renew its certificate at its next contact.`, '#notice');
	});
	await check('force renewal: GET /v1/renew/<serial> (public) says renew_now, asked by an administrator', async () => {
		const h = await hint();
		eq([h.renew_now, h.reason], [true, 'An administrator asked for renewal.'], 'renew_now, reason');
	});
	await check('force renewal: GET /v1/devices/<mac> says renew_requested, still active', async () => {
		const d = await device(R.mac);
		eq([d.renew_requested, d.status], [true, 'active'], 'renew_requested, status');
	});
	// the owner (security): changed, then changed back
	for (const who of ['robert', R.owner]) {
		await check(`owner: New owner ${who}, Change owner: the API and the term Owner say ${who}`, async () => {
			await textbox(page, 'New owner').fill(who);
			await button(page, 'Change owner').click();
			await until(async () => (await device(R.mac)).owner === who, `owner ${who} on the server`);
			await waitText(definition(page, 'Owner'), who, 'term Owner');
		});
	}
	// groups (security): added to one, then removed from it
	await check('groups: Add to group desk, then Remove from desk (API and the term Groups)', async () => {
		await textbox(page, 'Add to group').fill('desk');
		await button(page, 'Add to group').click();
		await until(async () => show((await device(R.mac)).groups) === show(['desk', 'lab']), 'groups desk, lab on the server');
		await waitText(definition(page, 'Groups'), /desk/, 'term Groups');
		await button(page, 'Remove from desk').click();
		await until(async () => show((await device(R.mac)).groups) === show(['lab']), 'groups lab on the server');
		await waitText(definition(page, 'Groups'), 'lab', 'term Groups');
	});
	await check('validity: Group lab, Longest validity in days 90, Shorten validity: the group\'s cap is 90 days', async () => {
		await combobox(page, 'Group').selectOption('lab');
		await page.getByRole('spinbutton', { name: 'Longest validity in days', exact: true }).fill('90');
		await button(page, 'Shorten validity').click();
		await until(async () => psql("select max_validity_days from groups where name = 'lab'") === '90', 'the cap in the database');
		await notice(page).filter({ hasText: /\S/ }).waitFor();
	});
});

// --- rules and the decision tester (security) ---------------------------------
await scenario('rules', async (page) => {
	const D = fx.renew.mac;		// in the group lab
	const RES = 'printer-2f';	// a resource that does not exist yet
	const ruleForm = (name) => page.getByRole('form', { name, exact: true });
	const tryForm = page.getByRole('form', { name: 'Try a question', exact: true });
	const rules = table(page, 'Rules');
	// the rule ids and effects of the table against GET /v1/policy
	const tableMatchesServer = async () => {
		const srv = allRules(await policy()).map((r) => `${r.id} ${r.effect}`).sort();
		await until(async () => {
			const t = await readTable(rules);
			const id = t.cols.indexOf('Rule');
			const eff = t.cols.indexOf('Effect');
			const mine = t.rows.filter((r) => /^\d+$/.test(r[id] ?? '')).map((r) => `${r[id]} ${r[eff]}`).sort();
			return show(mine) === show(srv) || null;
		}, `the table Rules has the server's rules ${show(srv)}`);
	};
	// the row of rule ID as { column: text }
	const row = async (id) => {
		const t = await readTable(rules);
		const r = t.rows.find((x) => x[t.cols.indexOf('Rule')] === String(id));
		return r ? Object.fromEntries(t.cols.map((c, i) => [c, r[i]])) : null;
	};
	// ask(reason): "Try" D print RES gives "Allow: reason" or "Deny: reason";
	// every answer is kept to check its exact wording at the end
	const answers = [];
	const ask = async (decision, reason) => {
		await cacheCurrent();
		await textbox(tryForm, 'Device address').fill(D);
		await textbox(tryForm, 'Action').fill('print');
		await textbox(tryForm, 'Resource').fill(RES);
		await button(tryForm, 'Try').click();
		const want = `${decision}: ${reason}`;
		const t = await waitText(page.locator('#try-result'), new RegExp(`^${want}\\.?$`), '#try-result');
		answers.push([want, t]);
	};
	const rulesOf = async () => allRules(await policy()).filter((r) => r.resource === RES);
	const fill = async (form, { type, subject, effect }) => {
		await combobox(form, 'Subject type').selectOption(type);
		await textbox(form, 'Subject').fill(subject);
		await textbox(form, 'Resource').fill(RES);
		await textbox(form, 'Action').fill('print');
		await combobox(form, 'Effect').selectOption(effect);
	};

	await login(page, A.security);
	await step('rules: nav Access rules opens #/rules with the heading, the table Rules and the form Add a rule', async () => {
		await sections(page).getByRole('link', { name: 'Access rules', exact: true }).click();
		await heading(page, 'Access rules').waitFor();
		await rules.waitFor();
		await ruleForm('Add a rule').waitFor();
		eq(hashOf(page), '#/rules', 'route');
	});
	await check('rules: the table has the columns Rule, Subject, Resource, Action, Effect, Conditions and matches GET /v1/policy', async () => {
		const t = await readTable(rules);
		for (const c of ['Rule', 'Subject', 'Resource', 'Action', 'Effect', 'Conditions'])
			assert(t.cols.includes(c), `columns ${show(t.cols)}`);
		await tableMatchesServer();
	});
	await check('rules: the form has Subject type (group, user, device), Effect (allow, deny), From time, Until time', async () => {
		const f = ruleForm('Add a rule');
		hasOptions(await options(combobox(f, 'Subject type')), ['group', 'user', 'device']);
		hasOptions(await options(combobox(f, 'Effect')), ['allow', 'deny']);
		await textbox(f, 'From time').waitFor();
		await textbox(f, 'Until time').waitFor();
	});
	await check(`try: ${RES} does not exist yet: "Deny: unknown resource"`, async () => {
		await ask('Deny', 'unknown resource');
	});

	// add: the group lab may print on the new resource
	await fill(ruleForm('Add a rule'), { type: 'group', subject: 'lab', effect: 'allow' });
	await button(ruleForm('Add a rule'), 'Add rule').click();
	let id = null;
	await step(`rules: Add rule makes the resource ${RES} and the rule (GET /v1/policy)`, async () => {
		const r = await until(async () => (await rulesOf()).length === 1 && (await rulesOf())[0], 'the rule on the server');
		eq([r.subject, r.action, r.effect], [{ group: 'lab' }, 'print', 'allow'], 'subject, action, effect');
		id = r.id;
	});
	await check(`rules: the table shows rule ${id} (lab, ${RES}, print, allow) with Edit and Delete`, async () => {
		await button(rules, `Edit rule ${id}`).waitFor();
		await button(rules, `Delete rule ${id}`).waitFor();
		await tableMatchesServer();
		const r = await row(id);
		assert(r && r.Subject.includes('lab') && r.Resource === RES && r.Action === 'print' && r.Effect === 'allow', `row ${show(r)}`);
	});
	await check(`try: "Allow: allowed by rule ${id}"`, async () => {
		await ask('Allow', `allowed by rule ${id}`);
	});

	// edit: the effect becomes deny
	const edit = ruleForm(`Edit rule ${id}`);
	await step(`rules: Edit rule ${id} turns the form into "Edit rule ${id}" with the rule's values`, async () => {
		await button(rules, `Edit rule ${id}`).click();
		await edit.waitFor();
		eq([await combobox(edit, 'Subject type').inputValue(), await textbox(edit, 'Subject').inputValue(),
			await textbox(edit, 'Resource').inputValue(), await textbox(edit, 'Action').inputValue(),
			await combobox(edit, 'Effect').inputValue()], ['group', 'lab', RES, 'print', 'allow'], 'the form');
		await button(edit, 'Save rule').waitFor();
		await button(edit, 'Cancel editing').waitFor();
	});
	await combobox(edit, 'Effect').selectOption('deny');
	await button(edit, 'Save rule').click();
	let id2 = null;
	await step('rules: Save rule replaces the rule by a deny rule on the server', async () => {
		const r = await until(async () => {
			const l = await rulesOf();
			return l.length === 1 && l[0].effect === 'deny' && l[0];
		}, `one deny rule on ${RES}`);
		eq([r.subject, r.action], [{ group: 'lab' }, 'print'], 'subject, action');
		id2 = r.id;
		detail(`rule ${id} is now rule ${id2}`);
	});
	await check(`rules: the replacement is audited (rule.replace of ${id} by console:${A.security.name})`, async () => {
		eq(psql(`select actor || ' ' || object from audit_log where action = 'rule.replace' order by seq desc limit 1`),
			`console:${A.security.name} ${id}`, 'actor, object');
	});
	await check(`rules: the form is "Add a rule" again and the table shows rule ${id2} deny`, async () => {
		await ruleForm('Add a rule').waitFor();
		await tableMatchesServer();
		const r = await row(id2);
		assert(r && r.Effect === 'deny' && r.Resource === RES, `row ${show(r)}`);
	});
	await check(`try: "Deny: denied by rule ${id2}"`, async () => {
		await ask('Deny', `denied by rule ${id2}`);
	});

	// delete, first cancelled
	const dialog = page.getByRole('dialog', { name: `Delete rule ${id2}`, exact: true });
	await check(`rules: Delete rule ${id2} asks in the dialog "Delete rule ${id2}"; Cancel keeps the rule`, async () => {
		await button(rules, `Delete rule ${id2}`).click();
		await dialog.waitFor();
		await button(dialog, 'Cancel').click();
		await dialog.waitFor({ state: 'hidden' });
		await sleep(300);	// a wrong deletion would have been sent by now
		eq((await rulesOf()).map((r) => r.id), [id2], 'rules on the server');
	});
	await step(`rules: Delete in the dialog deletes rule ${id2} (server and table)`, async () => {
		await button(rules, `Delete rule ${id2}`).click();
		await dialog.waitFor();
		await button(dialog, 'Delete').click();
		await until(async () => (await rulesOf()).length === 0, 'no rule on the server');
		await until(async () => (await button(rules, `Edit rule ${id2}`).count()) === 0, 'the row gone');
		await tableMatchesServer();
	});
	await check('try: "Deny: no rule allows this"', async () => {
		await ask('Deny', 'no rule allows this');
	});

	// a rule whose subject is a device
	await fill(ruleForm('Add a rule'), { type: 'device', subject: D, effect: 'allow' });
	await button(ruleForm('Add a rule'), 'Add rule').click();
	let id3 = null;
	await check(`rules: a rule on the device ${D} is added`, async () => {
		const r = await until(async () => (await rulesOf()).length === 1 && (await rulesOf())[0], 'the rule on the server');
		id3 = r.id;
		await ask('Allow', `allowed by rule ${id3}`);
	});
	await check(`rules: its Subject in the table names the device ${D}`, async () => {
		await until(async () => (await row(id3))?.Subject.includes(D), `Subject of rule ${id3} names ${D}`)
			.catch(async (e) => {
				throw new Error(`${e.message.split(' (waited')[0]}: the row is ${show(await row(id3))}`);
			});
	});
	await check(`rules: Edit rule ${id3} fills Subject with ${D}`, async () => {
		await button(rules, `Edit rule ${id3}`).click();
		const f = ruleForm(`Edit rule ${id3}`);
		await f.waitFor();
		eq([await combobox(f, 'Subject type').inputValue(), await textbox(f, 'Subject').inputValue()], ['device', D], 'Subject type, Subject');
	});
	await check('rules: Cancel editing gives the form Add a rule back', async () => {
		await button(page, 'Cancel editing').click();
		await ruleForm('Add a rule').waitFor();
	});
	if (id3 !== null)
		await call('DELETE', `/v1/rules/${id3}`, { role: 'security' });

	await check('try: #try-result says exactly "Allow: <reason>" or "Deny: <reason>" (the API\'s reason)', async () => {
		const off = answers.filter(([want, got]) => want !== got);
		assert(off.length === 0, off.map(([want, got]) => `wanted ${show(want)}, shows ${show(got)}`).join('\n'));
	});
});

// --- what a viewer cannot do --------------------------------------------------
await scenario('viewer', async (page) => {
	const R = fx.renew;
	await login(page, A.viewer);
	await check('viewer: the nav Sections shows all five links', async () => {
		const links = (await sections(page).getByRole('link').allTextContents()).map((x) => x.trim());
		eq(links, ['Overview', 'Intake', 'Devices', 'Access rules', 'Audit'], 'links');
	});
	await step(`viewer: #/devices/${R.mac} loads (Status active)`, async () => {
		await route(page, `#/devices/${R.mac}`, `Device ${R.mac}`);
		await waitText(definition(page, 'Status'), 'active', 'Status');
		await table(page, 'Certificates').waitFor();
	});
	await check(`viewer: no Revoke${ELLIPSIS}, Force renewal, Re-intake, Change owner, Add to group, Shorten validity, Remove from ... on the page`, async () => {
		const found = [];
		for (const b of [`Revoke${ELLIPSIS}`, 'Force renewal', 'Re-intake', 'Change owner', 'Add to group', 'Shorten validity']) {
			// in the page at all, shown or not
			const n = await page.getByRole('button', { name: b, exact: true, includeHidden: true }).count();
			if (n)
				found.push(`${b} (${n})`);
		}
		const rm = await page.getByRole('button', { name: /^Remove from /, includeHidden: true }).count();
		if (rm)
			found.push(`Remove from ... (${rm})`);
		assert(found.length === 0, `buttons present: ${found.join(', ')}`);
	});
	await check("viewer: POST revoke from the page with the viewer's cookie and CSRF token: 403", async () => {
		const csrf = await csrfOf(page);
		const r = await pageFetch(page, 'POST', `/v1/devices/${R.mac}/revoke`, { csrf, body: { reason: 'unspecified' } });
		eq([r.status, r.code], [403, 'forbidden'], 'status, code');
		eq((await device(R.mac)).status, 'active', 'the device on the server');
	});
	await check('viewer: #/intake says "Your role cannot enroll devices." and has no Enroll button', async () => {
		await route(page, '#/intake', 'Intake');
		await page.getByText('Your role cannot enroll devices.', { exact: true }).waitFor();
		eq(await page.getByRole('button', { name: /^Enroll/, includeHidden: true }).count(), 0, 'Enroll buttons');
	});
	await check('viewer: #/rules shows the table Rules without an error, and no Add, Edit or Delete', async () => {
		await route(page, '#/rules', 'Access rules');
		await until(async () => (await readTable(table(page, 'Rules'))).rows.length > 0, 'rows in Rules');
		eq(await text(errorBox(page)), '', '#error');
		eq(await page.getByRole('button', { name: /^(Add rule|Edit rule|Delete rule)/, includeHidden: true }).count(), 0, 'change buttons');
	});
	await check('viewer: #/audit has the table Audit log and no "Verify the chain"', async () => {
		await route(page, '#/audit', 'Audit');
		await table(page, 'Audit log').waitFor();
		eq(await page.getByRole('button', { name: 'Verify the chain', includeHidden: true }).count(), 0, 'Verify the chain');
	});
});

// --- CSRF (security) ------------------------------------------------------------
await scenario('csrf', async (page) => {
	const R = fx.renew;
	await login(page, A.security);
	await route(page, `#/devices/${R.mac}`, `Device ${R.mac}`);
	const csrf = await csrfOf(page);
	const rulesBefore = allRules(await policy()).length;
	await check('csrf: POST revoke without X-CSRF-Token: 403 csrf, the device still active', async () => {
		const r = await pageFetch(page, 'POST', `/v1/devices/${R.mac}/revoke`, { body: { reason: 'unspecified' } });
		eq([r.status, r.code], [403, 'csrf'], 'status, code');
		eq((await device(R.mac)).status, 'active', 'the device on the server');
	});
	await check('csrf: POST /v1/rules without X-CSRF-Token: 403 csrf, no rule added', async () => {
		const r = await pageFetch(page, 'POST', '/v1/rules', { body: { subject: { group: 'lab' }, resource: fx.resource, effect: 'deny' } });
		eq([r.status, r.code], [403, 'csrf'], 'status, code');
		eq(allRules(await policy()).length, rulesBefore, 'rules on the server');
	});
	await check('csrf: a wrong X-CSRF-Token: 403 csrf', async () => {
		const r = await pageFetch(page, 'POST', `/v1/devices/${R.mac}/renew-request`, { csrf: 'x'.repeat(43) });
		eq([r.status, r.code], [403, 'csrf'], 'status, code');
	});
	await check('csrf: DELETE /v1/session without X-CSRF-Token: 403 csrf, still logged in', async () => {
		const r = await pageFetch(page, 'DELETE', '/v1/session');
		eq([r.status, r.code], [403, 'csrf'], 'status, code');
		eq((await pageFetch(page, 'GET', '/v1/session')).status, 200, 'GET /v1/session');
	});
	await check('csrf: with the token the same page may ask (POST /v1/authorize/try: 200)', async () => {
		const r = await pageFetch(page, 'POST', '/v1/authorize/try', { csrf, body: { device: { mac: R.mac }, resource: fx.resource, action: 'connect' } });
		eq([r.status, r.body?.decision], [200, 'allow'], 'status, decision');
	});
});

// --- the end of a session (operator) --------------------------------------------
await scenario('session-expiry', async (page, context) => {
	await login(page, A.operator);
	await route(page, '#/devices', 'Devices');
	await step('session: ended on the server (its absolute expiry set in the past)', async () => {
		const c = (await context.cookies()).find((x) => x.name === 'provd_session');
		assert(c && /^[A-Za-z0-9_-]{43}$/.test(c.value), 'no session cookie');
		const n = psql(`update console_sessions set expires_at = now() - interval '1 second' where token_sha256 = sha256(convert_to('${c.value}', 'UTF8')) returning 1`);
		eq(n, '1', 'sessions updated');
	});
	await step('session: the next action shows the login form and "Your session has ended; log in again."', async () => {
		await sections(page).getByRole('link', { name: 'Audit', exact: true }).click();
		await nameBox(page).waitFor();
		await page.getByRole('alert').filter({ hasText: 'Your session has ended; log in again.' }).waitFor();
		eq(await loggedInAs(page).count(), 0, '"Logged in as" shown');
	});
	await check('session: logging in again works', async () => {
		await loginForm(page, A.operator);
		await banner(page).getByText(whoText(A.operator)).waitFor();
	});
});

// --- accessibility: names, keyboard (admin) ------------------------------------
await scenario('accessibility', async (page) => {
	await page.goto(CONSOLE);
	await nameBox(page).waitFor();
	await check('a11y: every field of the login page has an accessible name', async () => {
		detail(`${await allNamed(page, 'login')} fields`);
	});
	// keyboard only: Tab to Name, type, Tab to Password, type, Enter
	const focused = (loc) => loc.evaluate((el) => el === document.activeElement);
	await step('keyboard: Tab reaches Name, then Password; Enter logs in', async () => {
		let tabs = 0;
		while (!(await focused(nameBox(page)))) {
			assert(++tabs <= 10, 'Name not reached in 10 Tabs');
			await page.keyboard.press('Tab');
		}
		await page.keyboard.type(A.admin.name);
		await page.keyboard.press('Tab');
		assert(await focused(passwordBox(page)), 'Tab after Name does not reach Password');
		await page.keyboard.type(A.admin.password);
		await page.keyboard.press('Enter');
		await banner(page).getByText(whoText(A.admin)).waitFor();
		detail(`${tabs} Tab presses to Name`);
	});
	await check('keyboard: Tab reaches the link Devices in Sections, Enter opens it', async () => {
		const link = sections(page).getByRole('link', { name: 'Devices', exact: true });
		let tabs = 0;
		while (!(await focused(link))) {
			assert(++tabs <= 40, 'the link Devices not reached in 40 Tabs');
			await page.keyboard.press('Tab');
		}
		await page.keyboard.press('Enter');
		await heading(page, 'Devices').waitFor();
	});
	const pages = [
		['#/overview', 'Overview'], ['#/intake', 'Intake'], ['#/devices', 'Devices'],
		[`#/devices/${fx.renew.mac}`, `Device ${fx.renew.mac}`], ['#/rules', 'Access rules'], ['#/audit', 'Audit'],
	];
	for (const [hash, h] of pages) {
		await check(`a11y: every field of ${hash} has an accessible name`, async () => {
			await route(page, hash, h);
			await sleep(500);	// the page's data arrives
			detail(`${await allNamed(page, hash)} fields`);
		});
	}
	await check(`a11y: every field of the Revoke${ELLIPSIS} dialog has an accessible name`, async () => {
		await route(page, `#/devices/${fx.renew.mac}`, `Device ${fx.renew.mac}`);
		await button(page, `Revoke${ELLIPSIS}`).click();
		const dialog = page.getByRole('dialog', { name: `Revoke device ${fx.renew.mac}`, exact: true });
		await dialog.waitFor();
		await allNamed(page, 'the dialog');
		await page.keyboard.press('Escape');
		await dialog.waitFor({ state: 'hidden' }).catch(() => button(dialog, 'Cancel').click());
	});
	await check('audit: filter by Action certificate.revoke lists the rows the API lists; Older entries exists', async () => {
		await route(page, '#/audit', 'Audit');
		const r = await call('GET', '/v1/audit?action=certificate.revoke');
		eq(r.status, 200, 'GET /v1/audit');
		const want = r.body.entries.map((e) => String(e.seq));
		assert(want.length >= 1, 'no certificate.revoke in the audit log');
		await textbox(page, 'Action').fill('certificate.revoke');
		await button(page, 'Filter').click();
		await until(async () => {
			const t = await readTable(table(page, 'Audit log'));
			const seq = t.cols.indexOf('Seq');
			const act = t.cols.indexOf('Action');
			return show(t.rows.map((x) => x[seq])) === show(want) && t.rows.every((x) => x[act] === 'certificate.revoke');
		}, `the rows ${show(want)}`);
		await button(page, 'Older entries').waitFor({ state: 'attached' });
	});
	await check('audit: "Verify the chain" says "The audit chain is intact"', async () => {
		await route(page, '#/audit', 'Audit');
		await table(page, 'Audit log').waitFor();
		await button(page, 'Verify the chain').click();
		const t = await waitText(page.locator('#verify-result'), /^The audit chain is intact/, '#verify-result');
		detail(t);
	});
});

// --- 200 % zoom: a 640 px wide viewport (1280 px at 200 %) -------------------------
await scenario('zoom-200', async (page) => {
	const W = 640;
	const fits = async () => {
		const { sw, cw } = await page.evaluate(() => ({
			sw: document.scrollingElement.scrollWidth, cw: document.scrollingElement.clientWidth }));
		assert(sw <= cw + 1, `horizontal scrolling: scrollWidth ${sw} > clientWidth ${cw}`);
	};
	const inView = async (loc, what) => {
		await loc.waitFor();
		const b = await loc.boundingBox();
		assert(b && b.x >= -1 && b.x + b.width <= W + 1, `${what} is outside the ${W} px width: ${show(b)}`);
	};
	await page.goto(CONSOLE);
	await check('zoom: the login page fits 640 px', async () => {
		await nameBox(page).waitFor();
		await fits();
		await inView(loginButton(page), 'Log in');
	});
	await login(page, A.admin);
	const pages = [
		['#/overview', 'Overview', () => button(banner(page), 'Log out'), 'Log out'],
		['#/intake', 'Intake', () => button(page.getByRole('form', { name: 'Enroll a device', exact: true }), 'Enroll'), 'Enroll'],
		['#/devices', 'Devices', () => button(page, 'Search'), 'Search'],
		[`#/devices/${fx.renew.mac}`, `Device ${fx.renew.mac}`, () => button(page, `Revoke${ELLIPSIS}`), `Revoke${ELLIPSIS}`],
		['#/rules', 'Access rules', () => button(page, 'Add rule'), 'Add rule'],
		['#/audit', 'Audit', () => button(page, 'Filter'), 'Filter'],
	];
	for (const [hash, h, action, what] of pages) {
		await check(`zoom: ${hash} fits 640 px; nav and ${what} visible`, async () => {
			await route(page, hash, h);
			await sleep(500);	// the page's data arrives
			await fits();
			for (const l of ['Overview', 'Intake', 'Devices', 'Access rules', 'Audit'])
				await inView(sections(page).getByRole('link', { name: l, exact: true }), `nav link ${l}`);
			await inView(action(), what);
		});
		if (hash === '#/devices')
			await page.screenshot({ path: path.join(fx.shots, 'zoom-200-devices.png') }).catch(() => {});
	}
}, { viewport: { width: 640, height: 800 }, deviceScaleFactor: 2 });

// --- page weight: every response of a first visit and a tour ------------------------
await scenario('page-weight', async (page) => {
	const sizes = [];
	page.on('response', (r) => {
		sizes.push(r.body().then((b) => ({ url: r.url(), n: b.length }))
			.catch(() => ({ url: r.url(), n: Number(r.headers()['content-length'] ?? 0) })));
	});
	const total = async () => {
		const all = await Promise.all(sizes);
		const statics = all.filter((x) => !new URL(x.url).pathname.startsWith('/v1/'));
		const sum = (l) => l.reduce((a, x) => a + x.n, 0);
		return { all: sum(all), statics: sum(statics), count: all.length, files: statics.map((x) => `${new URL(x.url).pathname} ${x.n}`) };
	};
	await login(page, A.admin);
	await heading(page, 'Devices by status').waitFor();
	await sleep(1000);	// the overview's charts load
	await check('weight: the login page and the overview load under 300 KB', async () => {
		const t = await total();
		detail(`${t.all} bytes in ${t.count} responses (${t.statics} bytes of files: ${t.files.join(', ')})`);
		assert(t.all < 300 * 1024, `${t.all} bytes`);
	});
	for (const [hash, h] of [['#/intake', 'Intake'], ['#/devices', 'Devices'], [`#/devices/${fx.renew.mac}`, `Device ${fx.renew.mac}`],
		['#/rules', 'Access rules'], ['#/audit', 'Audit']])
		await route(page, hash, h);
	await sleep(1000);
	await check('weight: a tour of every page loads under 300 KB in all', async () => {
		const t = await total();
		detail(`${t.all} bytes in ${t.count} responses, ${t.statics} of them files`);
		assert(t.all < 300 * 1024, `${t.all} bytes`);
	});
});

// --- what every page did ------------------------------------------------------
const calls = (await Promise.all(apiCalls)).filter((c) => c && !c.probe);
await check('every change the console made sent X-CSRF-Token', async () => {
	const bad = calls.filter((c) => !['GET', 'HEAD'].includes(c.method) && !(c.method === 'POST' && c.path === '/v1/session') && !c.csrf);
	assert(bad.length === 0, bad.map((c) => `${c.scenario}: ${c.method} ${c.path}`).join('\n'));
	detail(`${calls.length} API calls by the pages`);
});
await check('every API call of the console but the login carried the session cookie', async () => {
	// before logging in (and after logging out) the page may ask GET /v1/session
	const bad = calls.filter((c) => c.path !== '/v1/session' && !c.cookie);
	assert(bad.length === 0, bad.map((c) => `${c.scenario}: ${c.method} ${c.path}`).join('\n'));
});
await check('no script error and no Content-Security-Policy refusal in any page', async () => {
	assert(pageErrors.length === 0, pageErrors.slice(0, 10).join('\n'));
});

await browser.close();
await api.dispose();
console.log(`# screenshots: ${fs.readdirSync(fx.shots).filter((f) => f.endsWith('.png')).sort().join(' ')}`);
process.exit(failed ? 1 : 0);
