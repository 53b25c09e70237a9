import { SignJWT } from 'jose';

/** The caller a development or test token stands for, in edX JWT claims. */
export type TokenSubject =
  | { kind: 'learner'; lmsUserId: number; username: string; email?: string }
  | { kind: 'staff'; username: string; lmsUserId?: number }
  | { kind: 'service'; clientId: string };

/** Signs an HS256 token as the LMS would sign its JWTs (claims of edx-drf-extensions). */
export async function signToken(
  secret: string,
  subject: TokenSubject,
  options: { issuer?: string; audience?: string; expiresIn?: string } = {},
): Promise<string> {
  const claims =
    subject.kind === 'service'
      ? { grant_type: 'client-credentials', client_id: subject.clientId }
      : {
          preferred_username: subject.username,
          ...(subject.lmsUserId !== undefined ? { user_id: subject.lmsUserId } : {}),
          ...(subject.kind === 'learner' && subject.email ? { email: subject.email } : {}),
          administrator: subject.kind === 'staff',
        };
  const sub = subject.kind === 'service' ? subject.clientId : subject.username;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h');
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** The caller `npm run token -- <args>` stands for: `learner <id> <username>`, `staff <username>`, `service <id>`. */
export function subjectFromArgs(args: readonly string[]): TokenSubject | undefined {
  const [kind, a, b] = args;
  if (kind === 'learner' && a && b && Number.isInteger(Number(a)))
    return { kind, lmsUserId: Number(a), username: b };
  if (kind === 'staff' && a) return { kind, username: a };
  if (kind === 'service' && a) return { kind, clientId: a };
  return undefined;
}
