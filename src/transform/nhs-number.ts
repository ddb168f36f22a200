/**
 * NHS number check (docs/mapping-basis.md, NHS number): ten digits, Modulus 11 over the first nine with
 * weights 10…2; check = 11 − (sum mod 11), 11 → 0, 10 → the number is invalid.
 */

/** Removes spaces and hyphens people type ("999 123 4567"); returns the rest unchanged. */
export function normaliseNhsNumber(input: string): string {
  return input.replace(/[\s-]/g, '');
}

/** The check digit for nine digits, or undefined when no valid number can end them (remainder 10). */
export function nhsCheckDigit(nineDigits: string): number | undefined {
  if (!/^\d{9}$/.test(nineDigits)) return undefined;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(nineDigits[i]) * (10 - i);
  const check = 11 - (sum % 11);
  if (check === 11) return 0;
  if (check === 10) return undefined;
  return check;
}

/** True for exactly ten digits with a valid check digit (no spaces: normalise first). */
export function isValidNhsNumber(value: string): boolean {
  if (!/^\d{10}$/.test(value)) return false;
  return nhsCheckDigit(value.slice(0, 9)) === Number(value[9]);
}

/** True for numbers in the 999 test range (synthetic data). */
export function isTestNhsNumber(value: string): boolean {
  return isValidNhsNumber(value) && value.startsWith('999');
}
