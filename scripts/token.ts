// Prints a JWT for the embedded default (signed with the development secret, or JWT_SECRET):
//   npm run token -- learner <lmsUserId> <username>
//   npm run token -- staff <username>
//   npm run token -- service <clientId>
import { signToken, subjectFromArgs } from '../gateway/auth/tokens.js';
import { DEVELOPMENT_JWT_SECRET } from '../gateway/env.js';

const subject = subjectFromArgs(process.argv.slice(2));
if (!subject) {
  process.stderr.write(
    'usage: npm run token -- learner <lmsUserId> <username> | staff <username> | service <clientId>\n',
  );
  process.exit(2);
}
const token = await signToken(process.env.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET, subject, {
  issuer: process.env.JWT_ISSUER,
  audience: process.env.JWT_AUDIENCE,
  expiresIn: '12h',
});
process.stdout.write(`${token}\n`);
